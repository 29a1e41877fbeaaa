"""Features for the logistic-regression head: the sentence embedding next to hashed character n-grams.

The n-gram part is stateless hashing plus learned IDF weights, so a saved model is a few arrays, no vocabulary
object and no pickle.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

__all__ = ["LexicalFeatures", "combine"]


class LexicalFeatures:
    """TF-IDF over hashed `char_wb` n-grams; `fit` learns the IDF vector, `transform` is L2-normalised."""

    def __init__(self, *, n_features: int = 2**15, ngram_range: tuple[int, int] = (2, 5)) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.n_features = n_features
        self.ngram_range = tuple(ngram_range)
        self._hasher = HashingVectorizer(analyzer="char_wb", ngram_range=self.ngram_range, n_features=n_features,
                                         alternate_sign=False, norm=None, lowercase=True, dtype=np.float64)
        self.idf_: np.ndarray | None = None

    def fit(self, texts: Sequence[str]) -> LexicalFeatures:
        counts = self._hasher.transform(texts)
        df = np.bincount(counts.indices, minlength=self.n_features)
        n = counts.shape[0]
        self.idf_ = np.log((1 + n) / (1 + df)) + 1.0  # scikit-learn's smoothed IDF
        return self

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        if self.idf_ is None:
            raise RuntimeError("LexicalFeatures is not fitted")
        counts = self._hasher.transform(texts).tocsr()
        counts.data = 1.0 + np.log(counts.data)  # sublinear tf
        x = counts @ sparse.diags(self.idf_)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sparse.csr_matrix(sparse.diags(1.0 / norms) @ x)


def combine(embeddings: np.ndarray, lexical: sparse.csr_matrix | None, lexical_weight: float) -> sparse.csr_matrix:
    """Stack dense embeddings and weighted lexical features into one sparse design matrix."""
    dense = sparse.csr_matrix(embeddings.astype(np.float64))
    if lexical is None or lexical_weight == 0:
        return dense
    return sparse.hstack([dense, lexical * lexical_weight], format="csr")
