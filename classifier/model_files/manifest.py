"""`manifest.json` of a model directory: its pydantic schema (format 3, extra keys refused)."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "FORMAT_VERSION",
    "KIND",
    "MANIFEST",
    "READABLE_VERSIONS",
    "Calibration",
    "CascadeSpec",
    "EmbedderSpec",
    "ExamplesSpec",
    "FileRecord",
    "HeadSpec",
    "LexicalSpec",
    "Manifest",
    "ScopeSpec",
    "StageEntry",
    "is_plain_file_name",
]

FORMAT_VERSION: Final = 3
"""3: a list of heads, each naming its stage, file, embedders and threshold, and (since December 2026) the ordered
list of stages, `cascade.stages`, filled in with the built-in order when absent. 2 added
`params.static_features`; 1 is the first format."""
READABLE_VERSIONS = (1, 2, 3)
KIND: Final = "taskrouter.TaskClassifier"
MANIFEST = "manifest.json"


def is_plain_file_name(name: str) -> bool:
    """Whether `name` names a file inside the model directory itself (no folder, no `..`, no NUL)."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0") and name != MANIFEST


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileRecord(_Strict):
    sha256: str
    bytes: int


class EmbedderSpec(_Strict):
    """An embedder some head reads; a derived table (the static one) names the file holding its probe vectors.
    `sha256` is that of the shipped file behind it (graph or table) when the model was trained."""

    id: str
    dim: int
    probes_file: str | None = None
    sha256: str | None = None


class LexicalSpec(_Strict):
    analyzer: Literal["char_wb"] = "char_wb"
    ngram_range: tuple[int, int]
    n_features: int = Field(gt=0)
    file: str
    """The npz file holding the `idf` array."""

    @field_validator("ngram_range")
    @classmethod
    def _ordered(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= v[0] <= v[1]:
            raise ValueError(f"ngram_range must be (low, high) with 1 <= low <= high, got {list(v)}")
        return v


class Calibration(_Strict):
    method: Literal["temperature"] = "temperature"
    temperature: float = Field(ge=0.01, le=100, allow_inf_nan=False)
    """Training fits it in [0.05, 20]; one near 0 would turn every probability into NaN."""


class HeadSpec(_Strict):
    """One linear head: its stage, its `coef`/`intercept` file, the embedders it joins and its threshold."""

    stage: str
    file: str
    embedders: list[str] = Field(min_length=1)
    lexical_weight: float = Field(ge=0, allow_inf_nan=False)
    calibration: Calibration
    threshold: float = Field(ge=0, le=1 + 1e-6)
    target: dict[str, float] = {}
    curve: list[dict[str, float]] = []

    @field_validator("stage")
    @classmethod
    def _named_stage(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a head's stage must have a name")
        return v


class ExamplesSpec(_Strict):
    """The few-shot examples: texts and labels (JSON) and their vectors from `embedder` (npz `embeddings`)."""

    embedder: str
    vectors_file: str = "examples.npz"
    texts_file: str = "examples.json"


class ScopeSpec(_Strict):
    """The trained scope check (`classifier.scope.Scope`): mean cosine to the `k` nearest examples."""

    k: int = Field(ge=1)
    threshold: float = Field(ge=-1, le=1)
    target: float = Field(gt=0, lt=1)
    auc: dict[str, float] = {}
    pseudo_out_of_scope_caught: float = Field(ge=0, le=1)


class StageEntry(_Strict):
    """One stage of the cascade, in order: its name, the registered kind that loads it (`stages.REGISTRY`), its
    settings, and the files it keeps (listed in `files` too, so they are verified like the rest)."""

    name: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    config: dict[str, Any] = {}
    files: list[str] = []


class CascadeSpec(_Strict):
    rules: list[dict[str, Any]] = []
    precision_floor: float | None = None
    scope: ScopeSpec | None = None
    """None: the model was trained before scope existed (it cannot serve a fallback label)."""
    stages: list[StageEntry] = []
    """The cascade's stages in order, the source of truth for `Cascade.load`; a manifest written before this
    list existed gets the built-in order on load (`built_in_stages`)."""

    @field_validator("stages")
    @classmethod
    def _distinct(cls, v: list[StageEntry]) -> list[StageEntry]:
        names = [e.name for e in v]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be distinct, got {names}")
        return v


class Manifest(_Strict):
    """`manifest.json` of a model directory, format 3."""

    format_version: Literal[3] = FORMAT_VERSION
    kind: Literal["taskrouter.TaskClassifier"] = KIND
    labels: list[str] = Field(min_length=2)
    embedders: list[EmbedderSpec] = Field(min_length=1)
    lexical: LexicalSpec
    heads: list[HeadSpec] = Field(min_length=1)
    examples: ExamplesSpec
    params: dict[str, Any]
    """The `TaskClassifier` parameters the heads were trained with."""
    cascade: CascadeSpec = CascadeSpec()
    versions: dict[str, str] = {}
    training: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    upgraded_from: int | None = None
    """The format this manifest was converted from, without retraining (None: written by training)."""
    files: dict[str, FileRecord] = Field(min_length=1)

    def head(self, stage: str) -> HeadSpec | None:
        return next((h for h in self.heads if h.stage == stage), None)
