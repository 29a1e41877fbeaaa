"""Save and load a model as a directory: `manifest.json` plus arrays, never pickle.

Loading reads and hashes every file once, before anything is parsed: the manifest parses (a pydantic model,
extra keys refused) with this format and kind, every listed file exists with its recorded size and sha256, and
no unlisted file sits beside them. Arrays are then read from those same bytes with `allow_pickle=False` and
their shapes checked against the manifest. Manifests of format 1 and 2 (a `static_head` section in place of
the list of heads) are upgraded on load; `taskrouter model upgrade DIR` rewrites one in this format.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import assets
from .embedding import EMBEDDER_DIM, EMBEDDER_ID, Embedder
from .encoder import ENCODERS, Encoder, encoder_of
from .errors import ModelFileError
from .head import Examples, HeadExport, LinearHead
from .integrity import check_bytes
from .keywords import KeywordRules
from .results import EMBEDDING, STAGES, STATIC
from .stages import REGISTRY, FewShotLLMStage, HeadStage, RulesStage, ScopeStage, StageManifest
from .static_embedding import STATIC_ID

__all__ = [
    "DEFAULT_MODEL_DIR",
    "FORMAT_VERSION",
    "HeadSpec",
    "LoadedModel",
    "Manifest",
    "StageEntry",
    "built_in_stages",
    "load_manifest",
    "load_model",
    "save_model",
    "upgrade_manifest",
]

FORMAT_VERSION: Final = 3
"""3: a list of heads, each naming its stage, file, embedders and threshold, and (since December 2026) the ordered
list of stages, `cascade.stages`, filled in with the built-in order when absent. 2 added
`params.static_features`; 1 is the first format."""
READABLE_VERSIONS = (1, 2, 3)
KIND: Final = "taskrouter.TaskClassifier"
DEFAULT_MODEL_DIR = Path(__file__).parent / "model"
MANIFEST = "manifest.json"
_MAX_MANIFEST_BYTES = 20_000_000
STATIC_PROBES = (
    "integrate x^2 from 0 to 3",
    "fix this python error: KeyError 'id'",
    "write a haiku about the sea",
    "what time is it in Tokyo?",
    "Explique la photosynthèse",
    "SELECT name FROM users WHERE age > 30",
    "a short story about a robot who learns to paint",
    "best hiking boots for wet weather",
)
"""Texts embedded by the static table at training time, saved with its head and compared at load."""
MIN_PROBE_COSINE = 0.999
log = logging.getLogger("taskrouter.embedding")


# -- the manifest ----------------------------------------------------------------------------------------------
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


class Calibration(_Strict):
    method: Literal["temperature"] = "temperature"
    temperature: float = Field(gt=0)


class HeadSpec(_Strict):
    """One linear head: its stage, its `coef`/`intercept` file, the embedders it joins and its threshold."""

    stage: str
    file: str
    embedders: list[str] = Field(min_length=1)
    lexical_weight: float = Field(ge=0)
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


# -- what is loaded --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadedModel:
    """A verified model: its manifest, the exports it stores, the served heads by stage (cascade order), and the
    verified bytes of every file (which stages that keep files of their own read)."""

    directory: Path
    manifest: Manifest
    exports: dict[str, HeadExport]
    heads: dict[str, LinearHead]
    thresholds: dict[str, float]
    embedders: dict[str, Embedder | None]
    blobs: dict[str, bytes]


def save_model(
    directory: str | Path,
    heads: Sequence[tuple[HeadSpec, HeadExport]],
    examples: Examples,
    *,
    params: dict[str, Any],
    cascade: dict | None = None,
    training: dict | None = None,
    metrics: dict | None = None,
    stages: Sequence[StageManifest] | None = None,
) -> Path:
    """Write a model directory from explicit exports (created if needed); files of an earlier save are removed.

    `heads` pairs each head's manifest entry (its `file`, `embedders`, threshold...) with its arrays. The
    lexical IDF and the examples' vectors go with the MiniLM ("embedding") head's file and `examples.*`.
    `stages`: the cascade's stages in order, each entry with its own files (None: the built-in stages the
    heads, rules and scope make).
    """
    out = Path(directory)
    specs = [spec for spec, _ in heads]
    by_stage = {spec.stage: export for spec, export in heads}
    if EMBEDDING not in by_stage:
        raise ValueError("a model needs an embedding head")
    main = by_stage[EMBEDDING]
    blobs: dict[str, bytes] = {}
    main_id = main.embedder_ids[0]
    enc = encoder_of(main_id)
    if enc is None or enc.embedder_id != main_id:
        raise ValueError(f"the embedding head reads {main_id!r}, which is no shipped encoder's MiniLM vectors")
    embedders = {main_id: EmbedderSpec(id=main_id, dim=EMBEDDER_DIM, sha256=_installed_sha256(enc.onnx_file))}
    for spec, export in heads:
        if (
            export.classes != main.classes
            or export.ngram_range != main.ngram_range
            or not np.array_equal(export.idf, main.idf)
        ):
            raise ValueError(f"the {spec.stage} head must be fitted on the same data and features as the main head")
        arrays = {"coef": export.coef, "intercept": export.intercept}
        if spec.stage == EMBEDDING:
            arrays["idf"] = export.idf
        if enc.static_id in spec.embedders and enc.static_id not in embedders:
            # Keep what the token table gave for a few probes, so a load can tell whether the installed table is
            # the one the head was trained on.
            from .static_embedding import StaticMiniLMEmbedder

            table = StaticMiniLMEmbedder(encoder=enc.name)
            arrays["probes"] = table.encode(list(STATIC_PROBES), progress=False)
            embedders[enc.static_id] = EmbedderSpec(
                id=enc.static_id, dim=EMBEDDER_DIM, probes_file=spec.file, sha256=_installed_sha256(enc.static_file)
            )
        blobs[spec.file] = _npz(**arrays)
    entries = []
    for entry in stages or ():
        taken = sorted(set(entry.files) & (set(blobs) | {"examples.npz", "examples.json", MANIFEST}))
        if taken:
            raise ValueError(f"the {entry.name} stage's files {taken} clash with the model's own")
        blobs.update(entry.files)
        entries.append(StageEntry(name=entry.name, kind=entry.kind, config=entry.config, files=sorted(entry.files)))
    section = CascadeSpec(**(cascade or {}))
    section.stages = entries or built_in_stages(section, specs)
    blobs["examples.npz"] = _npz(embeddings=examples.embeddings)
    blobs["examples.json"] = json.dumps(
        {"texts": examples.texts, "labels": examples.labels}, ensure_ascii=False
    ).encode()
    manifest = Manifest(
        labels=list(main.classes),
        embedders=list(embedders.values()),
        lexical=LexicalSpec(ngram_range=main.ngram_range, n_features=len(main.idf), file=_file_of(specs, EMBEDDING)),
        heads=specs,
        examples=ExamplesSpec(embedder=main_id),
        params=params,
        cascade=section,
        versions=_versions(),
        training=training,
        metrics=metrics,
        files={name: FileRecord(sha256=hashlib.sha256(b).hexdigest(), bytes=len(b)) for name, b in blobs.items()},
    )
    _write(out, manifest, blobs)
    return out


def built_in_stages(cascade: CascadeSpec, heads: Sequence[HeadSpec]) -> list[StageEntry]:
    """The stages of a model with no `cascade.stages`: rules, scope, the heads (static before MiniLM), the LLM."""
    order = {name: i for i, name in enumerate(STAGES)}
    names = sorted((h.stage for h in heads), key=lambda name: order.get(name, len(order)))
    entries = [RulesStage(KeywordRules([])).to_manifest()] if cascade.rules else []
    entries += [ScopeStage.entry(), *(StageManifest(name, HeadStage.kind or "") for name in names)]
    entries.append(FewShotLLMStage.entry())
    return [StageEntry(name=e.name, kind=e.kind, config=e.config) for e in entries]


def _file_of(specs: Sequence[HeadSpec], stage: str) -> str:
    return next(s.file for s in specs if s.stage == stage)


def _write(out: Path, manifest: Manifest, blobs: dict[str, bytes]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for p in out.iterdir():  # e.g. static.npz of an earlier save: unlisted files are refused at load
        if p.is_file() and p.name != MANIFEST and p.name not in blobs:
            p.unlink()
    for name, b in blobs.items():
        if (out / name).is_file() and (out / name).read_bytes() == b:
            continue
        (out / name).write_bytes(b)
    text = json.dumps(manifest.model_dump(mode="json", exclude_none=True), indent=2, ensure_ascii=False)
    (out / MANIFEST).write_text(text + "\n", encoding="utf-8")


# -- loading ---------------------------------------------------------------------------------------------------
def load_manifest(directory: str | Path | None = None) -> tuple[Path, Manifest, dict[str, bytes]]:
    """Read a model directory once: (directory, its manifest in format 3, the verified bytes of every file)."""
    d = Path(directory) if directory is not None else DEFAULT_MODEL_DIR
    where = str(d)
    if not d.is_dir():
        raise ModelFileError("not a model directory", path=where)
    mpath = d / MANIFEST
    if not mpath.is_file():
        raise ModelFileError(f"no {MANIFEST}: not a taskrouter model", path=where)
    raw = mpath.read_bytes()
    if len(raw) > _MAX_MANIFEST_BYTES:
        raise ModelFileError(f"{MANIFEST} is implausibly large ({len(raw)} bytes)", path=where)
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{MANIFEST} is not valid JSON ({exc})", path=where) from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise ModelFileError(f"{MANIFEST} is not a {KIND} manifest", path=where)
    if doc.get("format_version") not in READABLE_VERSIONS:
        raise ModelFileError(
            f"format_version {doc.get('format_version')!r} is not supported "
            f"(this taskrouter reads {', '.join(map(str, READABLE_VERSIONS))})",
            path=where,
        )
    try:
        manifest = Manifest.model_validate(upgrade_manifest(doc))
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ModelFileError(f"{MANIFEST}: {field}: {err['msg']}", path=where) from None
    except ValueError as exc:
        raise ModelFileError(str(exc), path=where) from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise ModelFileError(f"manifest incomplete ({exc!r})", path=where) from None
    if not manifest.cascade.stages:
        manifest.cascade.stages = built_in_stages(manifest.cascade, manifest.heads)
    _check_stages(manifest, where)
    for emb in manifest.embedders:
        _check_encoder_installed(emb, where)
    present = {p.name for p in d.iterdir() if p.is_file()} - {MANIFEST}
    foreign = sorted(present - set(manifest.files))
    if foreign:
        raise ModelFileError(f"files not listed in the manifest: {foreign}", path=where)
    blobs = {}
    for name, meta in manifest.files.items():
        p = d / name
        if "/" in name or "\\" in name or not p.is_file():
            raise ModelFileError(f"missing file {name!r}", path=where)
        data = p.read_bytes()  # read once: what is parsed below is what was hashed here
        check_bytes(data, meta.sha256, meta.bytes, name, where)
        blobs[name] = data
    return d, manifest, blobs


def _check_stages(manifest: Manifest, where: str) -> None:
    """Every listed stage has a registered kind, and its files are among the manifest's (so they are verified)."""
    for i, entry in enumerate(manifest.cascade.stages):
        if entry.kind not in REGISTRY:
            raise ModelFileError(
                f"cascade.stages.{i}: the {entry.name} stage is of kind {entry.kind!r}, which no imported module "
                f"defines (known: {sorted(REGISTRY)}); import the module that defines it first",
                path=where,
            )
        unlisted = [f for f in entry.files if f not in manifest.files]
        if unlisted:
            raise ModelFileError(f"cascade.stages.{i}.files: not in the manifest's files: {unlisted}", path=where)


def load_model(directory: str | Path | None = None, *, skip: Sequence[str] = ()) -> LoadedModel:
    """Verify, then build the served heads (NumPy only) of a model directory; heads of `skip` stages are not
    built (their files are still verified).

    A static table that is neither cached nor buildable here, or is not the one the heads were trained on, is
    an error when the MiniLM head reads it; when only the static head does, that head is left out with a warning.
    """
    d, m, blobs = load_manifest(directory)
    where = str(d)
    arrays = {name: _parse_npz(blobs[name], name, where) for name in blobs if name.endswith(".npz")}
    exports = _exports(m, arrays, blobs, where)
    main_head = m.head(EMBEDDING)
    assert main_head is not None, "_exports checks that there is one"
    enc = encoder_of(main_head.embedders[0])
    if enc is None or enc.embedder_id != main_head.embedders[0]:
        raise ModelFileError(f"heads[embedding] reads {main_head.embedders[0]!r}, no encoder's vectors", path=where)
    static_id = enc.static_id
    embedders: dict[str, Embedder | None] = {enc.embedder_id: _serving(enc)}  # None: the default, at first use
    wanted = [h for h in m.heads if h.stage not in skip]
    needs_static = [h.stage for h in m.heads if static_id in h.embedders]
    if needs_static:
        spec = next((e for e in m.embedders if e.id == static_id and e.probes_file), None)
        probes = arrays.get(spec.probes_file, {}).get("probes") if spec and spec.probes_file else None
        if probes is None or probes.shape != (len(STATIC_PROBES), EMBEDDER_DIM):
            raise ModelFileError("inconsistent model: static head probes", path=where)
        if any(static_id in h.embedders for h in wanted):
            embedders[static_id], why = _static_embedder(probes, enc)
            if embedders[static_id] is None:
                if EMBEDDING in needs_static:
                    raise ModelFileError(
                        f"this model's MiniLM head reads static vectors, but {why}; or use a model "
                        f"trained with --no-static-features",
                        path=where,
                    )
                log.warning("static stage off: %s", why)
                wanted = [h for h in wanted if static_id not in h.embedders]
    order = {e.name: i for i, e in enumerate(m.cascade.stages)}
    wanted.sort(key=lambda h: order.get(h.stage, len(order)))
    heads = {h.stage: LinearHead.from_arrays(exports[h.stage], [embedders[e] for e in h.embedders]) for h in wanted}
    return LoadedModel(d, m, exports, heads, {h.stage: h.threshold for h in wanted}, embedders, blobs)


def _exports(
    m: Manifest, arrays: dict[str, dict[str, np.ndarray]], blobs: dict[str, bytes], where: str
) -> dict[str, HeadExport]:
    """Each head's arrays, checked against the manifest."""
    if len(set(m.labels)) != len(m.labels):
        raise ModelFileError("labels must be distinct", path=where)
    idf = arrays.get(m.lexical.file, {}).get("idf")
    if idf is None or idf.shape != (m.lexical.n_features,):
        raise ModelFileError("inconsistent model: idf shape", path=where)
    try:
        ex = json.loads(blobs[m.examples.texts_file].decode("utf-8"))
        texts, ex_labels = list(ex["texts"]), list(ex["labels"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"examples incomplete ({exc!r})", path=where) from None
    vectors = arrays.get(m.examples.vectors_file, {}).get("embeddings")
    if vectors is None or vectors.shape != (len(texts), EMBEDDER_DIM) or len(texts) != len(ex_labels):
        raise ModelFileError("inconsistent model: examples shape", path=where)
    examples = Examples(texts, ex_labels, vectors)
    dims = {e.id: e.dim for e in m.embedders}
    rows = 1 if len(m.labels) == 2 else len(m.labels)
    exports = {}
    if len({h.stage for h in m.heads}) != len(m.heads) or m.head(EMBEDDING) is None:
        raise ModelFileError("heads: one embedding head and at most one head per stage", path=where)
    for h in m.heads:
        unknown = [e for e in h.embedders if e not in dims]
        if unknown:
            raise ModelFileError(f"heads[{h.stage}].embedders: not in the manifest's embedders: {unknown}", path=where)
        file = arrays.get(h.file)
        if file is None:
            raise ModelFileError(f"heads[{h.stage}].file {h.file!r} is not a listed npz file", path=where)
        coef, intercept = file.get("coef"), file.get("intercept")
        width = sum(dims[e] for e in h.embedders) + m.lexical.n_features
        if coef is None or coef.shape != (rows, width):
            raise ModelFileError(
                f"inconsistent model: {'coef' if h.stage == EMBEDDING else h.stage + ' head'} shape", path=where
            )
        if intercept is None or intercept.shape != (rows,):
            raise ModelFileError(f"inconsistent model: {h.stage} intercept shape", path=where)
        exports[h.stage] = HeadExport(
            tuple(m.labels),
            coef,
            intercept,
            h.calibration.temperature,
            h.lexical_weight,
            idf,
            m.lexical.ngram_range,
            tuple(h.embedders),
            examples if h.stage == EMBEDDING else None,
        )
    return exports


def _serving(enc: Encoder) -> Embedder | None:
    """The serving embedder of `enc`: None for the base encoder (the process default, chosen at first use)."""
    if enc.name == "base":
        return None
    from .embedding import serving_embedder

    return serving_embedder(enc.name)


def _installed_sha256(name: str) -> str | None:
    return assets.recorded_sha256(name) if assets.installed(name) else None


def _check_encoder_installed(emb: EmbedderSpec, where: str) -> None:
    """Refuse a model whose embedder is no shipped encoder's, or (for a tuned encoder, which one id names in
    every tuning) whose encoder is not the installed one: its heads would read vectors they were not fitted on."""
    enc = encoder_of(emb.id)
    if enc is None or emb.dim != EMBEDDER_DIM:
        ids = sorted({i for e in ENCODERS.values() for i in (e.embedder_id, e.static_id)})
        which = "static head trained with" if emb.probes_file else "trained with"
        raise ModelFileError(f"{which} embedder {emb.id!r} ({emb.dim}), expected one of {ids} ({EMBEDDER_DIM})",
                             path=where)  # fmt: skip
    if enc.name == "base":
        return  # the published model: its graph is checked against the reference, its table by the probes
    file = enc.static_file if emb.id == enc.static_id else enc.onnx_file
    here = _installed_sha256(file)
    if here is None:
        raise ModelFileError(
            f"trained with the {enc.name} encoder {emb.id!r} (sha256 {str(emb.sha256)[:12]}), which is not "
            f"installed here ({file} is missing): install the taskrouter that shipped it, or make it with "
            f"`taskrouter tune-encoder`",
            path=where,
        )
    if emb.sha256 is not None and emb.sha256 != here:
        raise ModelFileError(
            f"trained with the {enc.name} encoder {emb.id!r} sha256 {emb.sha256[:12]}, but the installed one "
            f"({file}) is sha256 {here[:12]}: retrain the model on this encoder, or install the one it needs",
            path=where,
        )


def _static_embedder(probes: np.ndarray, enc: Encoder):
    """(this machine's static embedder, None) when its table can be had and agrees with the saved probe vectors;
    else (None, why)."""
    from .static_embedding import StaticMiniLMEmbedder, available

    if not available(enc.name):
        return None, (
            f"the token table shipped in the package is missing (classifier/assets/{enc.static_file}): "
            "reinstall taskrouter, or rebuild it with `taskrouter assets build`"
        )
    embedder = StaticMiniLMEmbedder(encoder=enc.name)
    try:
        # Now, so a table that cannot be built or verified is known at load, not at the first query.
        here = embedder.load().encode(list(STATIC_PROBES), progress=False)
    except (ModelFileError, OSError, ValueError) as exc:
        return None, str(exc)
    agreement = float(np.min(np.sum(here * probes, axis=1)))  # both sides are unit vectors
    if agreement < MIN_PROBE_COSINE:
        return None, (
            f"this machine's token table is not the one the head was trained on (probe cosine "
            f"{agreement:.4f} < {MIN_PROBE_COSINE}); retrain it with this taskrouter"
        )
    return embedder, None


# -- older formats ---------------------------------------------------------------------------------------------
def upgrade_manifest(doc: dict) -> dict:
    """A manifest of format 1 or 2 (one MiniLM head, an optional `static_head` section) as format 3; a format-3
    manifest as is. The files and arrays stay what they were."""
    version = doc.get("format_version")
    if version == FORMAT_VERSION:
        return doc
    params = dict(doc["params"])
    static_features = params.setdefault("static_features", False)
    if not isinstance(static_features, bool):
        raise ValueError(f"params.static_features must be true or false, got {static_features!r}")
    if static_features and (not isinstance(version, int) or version < 2):
        raise ValueError("params.static_features needs format_version 2")
    emb = doc.get("embedder") or {}
    if (emb.get("id"), emb.get("dim")) != (EMBEDDER_ID, EMBEDDER_DIM):
        raise ValueError(f"trained with embedder {emb!r}, expected {EMBEDDER_ID} ({EMBEDDER_DIM})")
    section = dict(doc.get("cascade") or {})
    static_section = section.pop("static", None) or {}
    main = {
        "stage": EMBEDDING,
        "file": "weights.npz",
        "embedders": [EMBEDDER_ID],
        "lexical_weight": params["lexical_weight"],
        "calibration": doc["calibration"],
        "threshold": section.pop("threshold", 0.0),
        "target": section.pop("target", {}),
        "curve": section.pop("curve", []),
    }
    embedders = [{"id": EMBEDDER_ID, "dim": EMBEDDER_DIM}]
    heads = [main]
    old = doc.get("static_head")
    if static_features and old is None:
        raise ValueError("inconsistent model: static_features without a static head")
    if old is not None:
        old_emb = old.get("embedder") or {}
        if (old_emb.get("id"), old_emb.get("dim")) != (STATIC_ID, EMBEDDER_DIM):
            raise ValueError(f"static head trained with embedder {old.get('embedder')!r}, expected {STATIC_ID}")
        embedders.append({"id": STATIC_ID, "dim": EMBEDDER_DIM, "probes_file": "static.npz"})
        heads.insert(
            0,
            {
                "stage": STATIC,
                "file": "static.npz",
                "embedders": [STATIC_ID],
                "lexical_weight": old["lexical_weight"],
                "calibration": old["calibration"],
                "threshold": static_section.get("threshold", 1.0),
                "target": static_section.get("target", {}),
                "curve": static_section.get("curve", []),
            },
        )
        if static_features:
            main["embedders"].append(STATIC_ID)
    lexical = doc["lexical"]
    return {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "labels": doc["labels"],
        "embedders": embedders,
        "lexical": {
            "analyzer": lexical["analyzer"],
            "ngram_range": lexical["ngram_range"],
            "n_features": params["n_features"],
            "file": "weights.npz",
        },
        "heads": heads,
        "examples": {"embedder": EMBEDDER_ID},
        "params": params,
        "cascade": section,
        "versions": doc.get("versions", {}),
        "training": doc.get("training"),
        "metrics": doc.get("metrics"),
        "upgraded_from": version,
        "files": doc["files"],
    }


def convert(directory: str | Path) -> Path:
    """Rewrite a model directory's manifest in format 3 after loading it (no retraining, same array files)."""
    d, manifest, blobs = load_manifest(directory)
    _write(d, manifest, blobs)
    load_manifest(d)
    return d


# -- helpers ---------------------------------------------------------------------------------------------------
def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub: **kwds may not fill allow_pickle
    return buf.getvalue()


def _parse_npz(data: bytes, name: str, where: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # zip, format or object-array errors: the file is not ours
        raise ModelFileError(f"{name}: unreadable array file ({type(exc).__name__})", path=where) from None


def _versions() -> dict[str, str]:
    from .filecache import package_versions

    return {
        "python": platform.python_version(),
        **package_versions("taskrouter", "scikit-learn", "numpy", "onnxruntime", "tokenizers", "torch"),
    }
