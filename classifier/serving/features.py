"""Features for the logistic-regression head: the sentence embedding next to hashed character n-grams.

The n-gram part is stateless hashing plus learned IDF weights, so a saved model is a few arrays, no vocabulary
object and no pickle. Hashing is scikit-learn's `HashingVectorizer(analyzer="char_wb", alternate_sign=False)`
reproduced with `mmh3` (a test checks they agree index for index), so serving needs neither scikit-learn nor
SciPy: importing them costs about a second of cold start.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import mmh3
import numpy as np

__all__ = ["LexicalFeatures", "SparseRows", "char_wb_ngrams", "combine", "linear_scores"]

_INT32_MIN = -(2**31)


@dataclass(frozen=True)
class SparseRows:
    """Rows of a sparse matrix in CSR form: row i holds `indices[indptr[i]:indptr[i+1]]` with their `values`."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    n_columns: int

    def take(self, rows: Sequence[int]) -> SparseRows:
        """The given rows, in that order."""
        starts, ends = self.indptr[:-1][rows], self.indptr[1:][rows]
        picks = [np.arange(a, b) for a, b in zip(starts, ends, strict=True)]
        at = np.concatenate(picks) if picks else np.empty(0, dtype=np.int64)
        return SparseRows(
            np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64),
            self.indices[at],
            self.values[at],
            self.n_columns,
        )

    def to_scipy(self):
        """The same rows as a `scipy.sparse.csr_matrix` (training only; imports SciPy)."""
        from scipy import sparse

        return sparse.csr_matrix((self.values, self.indices, self.indptr), shape=(len(self.indptr) - 1, self.n_columns))


def char_wb_ngrams(text: str, ngram_range: tuple[int, int]) -> list[str]:
    """Character n-grams inside words padded with one space, as scikit-learn's `char_wb` analyzer makes them."""
    min_n, max_n = ngram_range
    grams: list[str] = []
    add = grams.append
    for word in text.lower().split():
        w = " " + word + " "
        w_len = len(w)
        for n in range(min_n, max_n + 1):
            if w_len <= n:  # a short word counts once, whole
                add(w)
                break
            for offset in range(w_len - n + 1):
                add(w[offset : offset + n])
    return grams


class LexicalFeatures:
    """TF-IDF over hashed `char_wb` n-grams; `fit` learns the IDF vector, `transform_rows` is L2-normalised."""

    def __init__(self, *, n_features: int = 2**15, ngram_range: tuple[int, int] = (2, 5)) -> None:
        self.n_features = n_features
        min_n, max_n = ngram_range
        self.ngram_range = (min_n, max_n)
        self.idf_: np.ndarray | None = None
        self._key: tuple[object, tuple] | None = None

    @property
    def key(self) -> tuple:
        """Identifies the rows `transform_rows` makes: size, n-gram range and a digest of the IDF weights."""
        if self.idf_ is None:
            raise RuntimeError("LexicalFeatures is not fitted")
        if self._key is None or self._key[0] is not self.idf_:
            digest = hashlib.sha256(np.ascontiguousarray(self.idf_).tobytes()).hexdigest()
            self._key = (self.idf_, (self.n_features, self.ngram_range, digest))
        return self._key[1]

    def counts(self, texts: Sequence[str]) -> SparseRows:
        """Raw n-gram counts per text in hashed columns (indices sorted within each row)."""
        n = self.n_features
        indptr = [0]
        indices: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for text in texts:
            text.encode("utf-8")  # UnicodeEncodeError on a lone surrogate, which mmh3 would crash on
            # mmh3.hash defaults: seed 0, signed 32-bit, as scikit-learn's murmurhash3_32 is called.
            hashes = np.fromiter(map(mmh3.hash, char_wb_ngrams(text, self.ngram_range)), dtype=np.int64)
            cols = np.abs(hashes) % n
            cols[hashes == _INT32_MIN] = (2**31 - 1 - (n - 1)) % n  # scikit-learn's abs(-2**31) % n
            unique, count = np.unique(cols, return_counts=True)
            indices.append(unique)
            values.append(count.astype(np.float64))
            indptr.append(indptr[-1] + len(unique))
        empty = np.empty(0)
        return SparseRows(
            np.asarray(indptr, dtype=np.int64),
            np.concatenate(indices).astype(np.int32) if indices else empty.astype(np.int32),
            np.concatenate(values) if values else empty,
            n,
        )

    def fit(self, texts: Sequence[str]) -> LexicalFeatures:
        counts = self.counts(texts)
        df = np.bincount(counts.indices, minlength=self.n_features)
        n = len(texts)
        self.idf_ = np.log((1 + n) / (1 + df)) + 1.0  # scikit-learn's smoothed IDF
        return self

    def transform_rows(self, texts: Sequence[str]) -> SparseRows:
        """Sublinear-TF × IDF rows, each scaled to unit L2 norm (an empty row stays empty)."""
        if self.idf_ is None:
            raise RuntimeError("LexicalFeatures is not fitted")
        rows = self.counts(texts)
        values = (1.0 + np.log(rows.values)) * self.idf_[rows.indices]
        row_of = np.repeat(np.arange(len(texts)), np.diff(rows.indptr))
        norms = np.sqrt(np.bincount(row_of, weights=values**2, minlength=len(texts)))
        norms[norms == 0] = 1.0
        return SparseRows(rows.indptr, rows.indices, values / norms[row_of], rows.n_columns)

    def transform(self, texts: Sequence[str]):
        """`transform_rows` as a SciPy CSR matrix (training)."""
        return self.transform_rows(texts).to_scipy()


def combine(embeddings: np.ndarray, lexical, lexical_weight: float):
    """Stack dense embeddings and weighted lexical features into one SciPy design matrix (training)."""
    from scipy import sparse

    dense = sparse.csr_matrix(embeddings.astype(np.float64))
    if lexical is None or lexical_weight == 0:
        return dense
    return sparse.hstack([dense, lexical * lexical_weight], format="csr")


def linear_scores(
    embeddings: np.ndarray, lexical: SparseRows | None, lexical_weight: float, coef: np.ndarray, intercept: np.ndarray
) -> np.ndarray:
    """`combine(...) @ coef.T + intercept` computed with NumPy alone (serving)."""
    dim = embeddings.shape[1]
    scores = embeddings.astype(np.float64) @ coef[:, :dim].T + intercept
    if lexical is not None and lexical_weight != 0 and coef.shape[1] > dim:
        row_of = np.repeat(np.arange(len(embeddings)), np.diff(lexical.indptr))
        contributions = coef[:, dim + lexical.indices].T * (lexical.values * lexical_weight)[:, None]
        np.add.at(scores, row_of, contributions)
    return scores
