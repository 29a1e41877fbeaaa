"""MiniLM's token window: the first three quarters and the last quarter of `max_tokens`, [CLS] and [SEP] kept."""

import numpy as np
import pytest

from classifier.serving.onnx_embedding import OnnxMiniLMEmbedder, _head_and_tail

CLS, SEP = 101, 102


def test_short_rows_are_kept_whole_and_padded():
    ids, mask = _head_and_tail([[CLS, 5, 6, SEP], [CLS, SEP]], 8)
    assert ids.tolist() == [[CLS, 5, 6, SEP], [CLS, SEP, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]


def test_long_rows_keep_their_head_and_tail():
    row = [CLS, *range(1000, 1100), SEP]
    ids, mask = _head_and_tail([row], 16)
    assert ids.shape == (1, 16) and mask.all()
    assert ids[0].tolist() == row[:12] + row[-4:]
    assert ids[0, 0] == CLS and ids[0, -1] == SEP


def test_an_empty_batch():
    ids, mask = _head_and_tail([], 16)
    assert ids.shape == (0, 0) and mask.dtype == np.int64


@pytest.mark.parametrize("bad", [0, 7, 12.5, "128"])
def test_max_tokens_is_checked(bad):
    with pytest.raises(ValueError, match="'max_tokens' parameter must be an int >= 8 or None"):
        OnnxMiniLMEmbedder(max_tokens=bad)
