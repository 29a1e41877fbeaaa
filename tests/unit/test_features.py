"""The n-gram hasher is scikit-learn's HashingVectorizer index for index, and the NumPy scores match SciPy's."""

import numpy as np
import pytest
from sklearn.feature_extraction.text import HashingVectorizer

from classifier.serving.features import LexicalFeatures, char_wb_ngrams, combine, linear_scores
from tests.conftest import DATA

EDGES = [
    "",
    "   ",
    "a",
    "ab",
    "ÉCOLE naïve ß ﬁ İstanbul",
    "x\x1cy\u2028z\u00a0w\tv\n\nu",
    "日本語のテキスト",
    "emoji 🙂🙂 and ∑ symbols",
    "a" * 3000,
]


def _texts():
    import json

    rows = [json.loads(line) for line in DATA.open(encoding="utf-8")]
    return [r["text"] for r in rows[::4]] + EDGES


@pytest.mark.parametrize("ngram_range", [(2, 5), (1, 3)])
def test_counts_equal_scikit_learns_hashing_vectorizer(ngram_range):
    texts = _texts()
    reference = HashingVectorizer(
        analyzer="char_wb",
        ngram_range=ngram_range,
        n_features=2**15,
        alternate_sign=False,
        norm=None,
        lowercase=True,
        dtype=np.float64,
    )
    expected = reference.transform(texts).tocsr()
    expected.sum_duplicates()
    expected.sort_indices()
    got = LexicalFeatures(n_features=2**15, ngram_range=ngram_range).counts(texts).to_scipy()
    assert got.shape == expected.shape and (got != expected).nnz == 0


def test_char_wb_ngrams_pads_words_and_keeps_short_words_whole():
    assert char_wb_ngrams("Hi  a", (2, 3)) == [" h", "hi", "i ", " hi", "hi ", " a", "a ", " a "]


def test_numpy_scores_equal_the_scipy_design_matrix():
    texts = _texts()[:300]
    rng = np.random.default_rng(0)
    lexical = LexicalFeatures(n_features=2**12).fit(texts)
    embeddings = rng.normal(size=(len(texts), 8)).astype(np.float32)
    coef, intercept = rng.normal(size=(3, 8 + 2**12)), rng.normal(size=3)
    expected = np.asarray(combine(embeddings, lexical.transform(texts), 0.7) @ coef.T) + intercept
    got = linear_scores(embeddings, lexical.transform_rows(texts), 0.7, coef, intercept)
    assert np.allclose(got, expected, atol=1e-10)
    rows = lexical.transform(texts)
    norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
    assert np.allclose(norms[norms > 0], 1.0) and norms[0] > 0


def test_a_lone_surrogate_is_an_error_not_a_crash():
    with pytest.raises(UnicodeEncodeError):
        LexicalFeatures().counts(["fine", "broken \ud83d text"])


def test_take_picks_rows_in_order():
    texts = ["alpha beta", "", "gamma", "delta epsilon zeta"]
    lexical = LexicalFeatures(n_features=2**10).fit(texts)
    rows = lexical.transform_rows(texts)
    picked = rows.take([3, 1, 0]).to_scipy().toarray()
    assert np.array_equal(picked, rows.to_scipy().toarray()[[3, 1, 0]])
    assert rows.take([]).to_scipy().shape == (0, 2**10)


def test_tfidf_equals_scikit_learns_sublinear_tfidf_with_l2_norm():
    from sklearn.feature_extraction.text import TfidfTransformer

    texts = _texts()
    fit_on, apply_to = texts[::2], texts[1::2] + ["an n-gram unseen in training: qzxv"]
    hashing = HashingVectorizer(
        analyzer="char_wb",
        ngram_range=(2, 5),
        n_features=2**15,
        alternate_sign=False,
        norm=None,
        lowercase=True,
        dtype=np.float64,
    )
    reference = TfidfTransformer(sublinear_tf=True, smooth_idf=True, norm="l2").fit(hashing.transform(fit_on))
    ours = LexicalFeatures(n_features=2**15, ngram_range=(2, 5)).fit(fit_on)
    assert np.allclose(ours.idf_, reference.idf_, rtol=0, atol=1e-12)
    expected = reference.transform(hashing.transform(apply_to)).tocsr()
    got = ours.transform(apply_to)
    assert got.shape == expected.shape and abs(got - expected).max() < 1e-12
