"""CrossFit.load checks a --cv-vectors file's arrays, and names the file in a ModelFileError of its own."""

import numpy as np
import pytest

from classifier.errors import ModelFileError
from classifier.serving.encoder import EMBEDDER_DIM
from classifier.training.tune import CrossFit

SHA = "ab" * 32


def arrays(n: int = 3) -> dict:
    return {
        "keys": np.array([CrossFit.key(f"text {i}") for i in range(n)]),
        "minilm": np.ones((n, EMBEDDER_DIM), dtype=np.float16),
        "static": np.ones((n, EMBEDDER_DIM), dtype=np.float16),
        "encoder_sha256": np.array(SHA),
    }


def write(tmp_path, **changes):
    p = tmp_path / "cv.npz"
    given = {**arrays(), **changes}
    np.savez(p, **{k: v for k, v in given.items() if v is not None})
    return p


def test_a_file_save_wrote_loads(tmp_path):
    saved = CrossFit.load(CrossFit(*[arrays()[k] for k in ("keys", "minilm", "static")], SHA).save(tmp_path / "c.npz"))
    found, minilm, _ = saved.lookup(["text 1", "new"])
    assert found.tolist() == [True, False] and saved.encoder_sha256 == SHA and minilm.shape == (2, EMBEDDER_DIM)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"minilm": np.full((3, EMBEDDER_DIM), np.nan)}, "'minilm' holds NaN or infinite numbers"),
        ({"static": np.full((3, EMBEDDER_DIM), np.inf, dtype=np.float32)}, "'static' holds NaN or infinite"),
        ({"keys": np.array([["a", "b"], ["c", "d"], ["e", "f"]])}, r"'keys' must be a 1-D array of strings"),
        ({"keys": np.arange(3)}, r"'keys' must be a 1-D array of strings, got shape \(3,\) of int64"),
        ({"minilm": np.ones((3, 8), dtype=np.float32)}, rf"'minilm' .* shape \(n, {EMBEDDER_DIM}\), got \(3, 8\)"),
        ({"static": np.ones(3 * EMBEDDER_DIM)}, r"'static' must be float vectors"),
        ({"minilm": np.ones((3, EMBEDDER_DIM), dtype=np.int8)}, r"'minilm' must be float vectors .* of int8"),
        ({"static": np.ones((2, EMBEDDER_DIM))}, r"3 keys but 2 'static' vectors"),
        ({"encoder_sha256": np.array("abc")}, r"'encoder_sha256' must be 64 hexadecimal digits, got 'abc'"),
        ({"encoder_sha256": np.array("G" * 64)}, "64 hexadecimal digits"),
        ({"encoder_sha256": np.array([SHA])}, "64 hexadecimal digits"),
        ({"static": None}, "no array 'static'"),
    ],
    ids=[
        "nan",
        "inf",
        "keys-2d",
        "keys-ints",
        "width",
        "vectors-1d",
        "ints",
        "lengths",
        "short-sha",
        "not-hex",
        "sha-array",
        "missing",
    ],
)
def test_bad_contents_are_a_model_file_error_naming_the_file(tmp_path, changes, match):
    """Before: a scikit-learn traceback (NaN), `TypeError: unhashable type` (2-D keys), or an error naming
    'cv_embeddings' (the width), all after the rules and embeddings."""
    p = write(tmp_path, **changes)
    with pytest.raises(ModelFileError, match=match) as info:
        CrossFit.load(p)
    assert info.value.path == str(p) and str(info.value).startswith(f"{p}: not a cross-fit vectors file")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"text,label\nhello,chat\n", r"not an \.npz archive \(ValueError\)"),  # numpy took it for a pickle
        (b"PK\x03\x04 truncated", r"not an \.npz archive \(BadZipFile\)"),
        (b"", r"not an \.npz archive \(EOFError\)"),
    ],
    ids=["text", "broken-zip", "empty"],
)
def test_a_file_that_is_no_npz_is_a_model_file_error(tmp_path, content, match):
    """Before: numpy's advice about allow_pickle."""
    p = tmp_path / "cv.npz"
    p.write_bytes(content)
    with pytest.raises(ModelFileError, match=match) as info:
        CrossFit.load(p)
    assert "allow_pickle" not in str(info.value)


def test_an_npy_array_an_object_array_and_a_missing_file_are_refused(tmp_path):
    npy = tmp_path / "cv.npy"
    np.save(npy, np.ones(3))
    with pytest.raises(ModelFileError, match="a single .npy array"):
        CrossFit.load(npy)
    objects = write(tmp_path, keys=np.array(["a", None, "c"], dtype=object))
    with pytest.raises(ModelFileError, match=r"an unreadable array \(ValueError\)"):
        CrossFit.load(objects)
    with pytest.raises(ModelFileError, match="nowhere.npz: file not found"):
        CrossFit.load(tmp_path / "nowhere.npz")
