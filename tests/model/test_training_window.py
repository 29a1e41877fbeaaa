"""Training reads each row as serving reads it: a long row's window (`classifier.window`), not its middle."""

from pathlib import Path

import numpy as np

from classifier.data import Dataset, load_dataset
from classifier.training.train import train_cascade
from classifier.window import HEAD_CHARS, TAIL_CHARS, window
from tests.conftest import ROOT

FILLER = {
    "legal": "SELECT id FROM orders; ",
    "sql": "my landlord and the contract clause ",
    "chitchat": "sue the court ",
}
"""Words of another label, put where serving never reads them."""


def _long(data: Dataset) -> Dataset:
    """Every third row with another label's words in its middle, beyond the window."""
    texts = list(data.texts)
    for i in range(0, len(texts), 3):
        middle = FILLER[data.labels[i]] * (3 * (HEAD_CHARS + TAIL_CHARS) // len(FILLER[data.labels[i]]))
        texts[i] = texts[i] + " " + "." * HEAD_CHARS + middle + "." * TAIL_CHARS + " " + texts[i]
    return Dataset(tuple(texts), data.labels, None, data.sources)


def _arrays(directory: Path) -> dict[str, np.ndarray]:
    out = {}
    for name in ("weights.npz", "static.npz"):
        with np.load(directory / name, allow_pickle=False) as z:
            out.update({f"{name}:{k}": z[k] for k in z.files})
    return out


def test_a_long_rows_middle_does_not_change_the_model(tmp_path):
    data = _long(load_dataset(ROOT / "tests/data/three_labels.csv"))
    assert max(len(t) for t in data.texts) > 2 * (HEAD_CHARS + TAIL_CHARS)
    seen = Dataset(tuple(window(t, HEAD_CHARS, TAIL_CHARS) for t in data.texts), data.labels, None)
    _, long_report = train_cascade(data, out=tmp_path / "long", progress=False)
    _, seen_report = train_cascade(seen, out=tmp_path / "seen", progress=False)
    a, b = _arrays(tmp_path / "long"), _arrays(tmp_path / "seen")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    thresholds = [(r.threshold, r.static_threshold) for r in (long_report, seen_report)]
    assert thresholds[0] == thresholds[1]
    assert long_report.rules == seen_report.rules
