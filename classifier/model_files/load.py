"""Load a model directory: read and hash every file once, before anything is parsed.

The manifest parses (a pydantic model, extra keys refused) with this format and kind, every listed file exists
with its recorded size and sha256, and no unlisted file sits beside them. Arrays are then read from those same
bytes with `allow_pickle=False` and their shapes checked against the manifest. Manifests of format 1 and 2 are
upgraded on load (`upgrade`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from .. import strict_json
from ..errors import ModelFileError
from ..integrity import check_bytes
from ..results import EMBEDDING, STAGES
from ..serving import assets
from ..serving.embedding import EMBEDDER_DIM, Embedder
from ..serving.encoder import ENCODERS, Encoder, encoder_of
from ..serving.head import Examples, HeadExport, LinearHead
from ..serving.stages import REGISTRY, FewShotLLMStage, HeadStage, RulesStage, ScopeStage, StageManifest
from .loaded import LoadedModel
from .manifest import (
    KIND,
    MANIFEST,
    READABLE_VERSIONS,
    CascadeSpec,
    EmbedderSpec,
    HeadSpec,
    Manifest,
    StageEntry,
    is_plain_file_name,
)
from .probes import STATIC_PROBES, static_embedder
from .upgrade import upgrade_manifest

__all__ = ["DEFAULT_MODEL_DIR", "LoadedModel", "built_in_stages", "installed_sha256", "load_manifest", "load_model"]

DEFAULT_MODEL_DIR = Path(__file__).parents[1] / "model"
_MAX_MANIFEST_BYTES = 20_000_000
log = logging.getLogger("taskrouter.embedding")


def built_in_stages(cascade: CascadeSpec, heads: Sequence[HeadSpec]) -> list[StageEntry]:
    """The stages of a model with no `cascade.stages`: rules, scope, the heads (static before MiniLM), the LLM."""
    order = {name: i for i, name in enumerate(STAGES)}
    names = sorted((h.stage for h in heads), key=lambda name: order.get(name, len(order)))
    entries = [StageManifest(RulesStage.name, RulesStage.kind or "")] if cascade.rules else []
    entries += [ScopeStage.entry(), *(StageManifest(name, HeadStage.kind or "") for name in names)]
    entries.append(FewShotLLMStage.entry())
    return [StageEntry(name=e.name, kind=e.kind, config=e.config) for e in entries]


def load_manifest(directory: str | Path | None = None) -> tuple[Path, Manifest, dict[str, bytes]]:
    """Read a model directory once: (directory, its manifest in format 3, the verified bytes of every file)."""
    d = Path(directory) if directory is not None else DEFAULT_MODEL_DIR
    where = str(d)
    if not d.is_dir():
        raise ModelFileError("not a model directory", path=where)
    mpath = d / MANIFEST
    if not mpath.is_file():
        raise ModelFileError(f"no {MANIFEST}: not a taskrouter model", path=where)
    size = mpath.stat().st_size
    if size > _MAX_MANIFEST_BYTES:  # refused before it is read
        raise ModelFileError(f"{MANIFEST} is implausibly large ({size} bytes)", path=where)
    try:
        with mpath.open("rb") as f:
            doc = strict_json.loads(f.read(_MAX_MANIFEST_BYTES + 1))
    except ValueError as exc:  # malformed, not UTF-8, a repeated key, or nested too deeply
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
        if not is_plain_file_name(name) or not p.is_file():
            raise ModelFileError(f"missing file {name!r}", path=where)
        size = p.stat().st_size
        if size != meta.bytes:  # before reading: a huge file is refused, not read into memory
            raise ModelFileError(f"{name}: size {size} != recorded {meta.bytes} (truncated or modified)", path=where)
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
        _check_numbers(probes, "static head probes", where)
        if any(static_id in h.embedders for h in wanted):
            embedders[static_id], why = static_embedder(probes, enc)
            if embedders[static_id] is None:
                if EMBEDDING in needs_static:
                    raise ModelFileError(
                        f"this model's MiniLM head reads static vectors, but {why}; or use a model "
                        f"trained with --no-static-features",
                        path=where,
                    )
                log.warning("static stage off: %s", why)
                wanted = [h for h in wanted if static_id not in h.embedders]
    for h in wanted:
        foreign = [e for e in h.embedders if e not in embedders]
        if foreign:  # listed in the manifest, yet neither the encoder's vectors nor its static table's
            raise ModelFileError(f"heads[{h.stage}].embedders: {foreign} belong to no installed encoder", path=where)
    order = {e.name: i for i, e in enumerate(m.cascade.stages)}
    wanted.sort(key=lambda h: order.get(h.stage, len(order)))
    heads = {h.stage: LinearHead.from_arrays(exports[h.stage], [embedders[e] for e in h.embedders]) for h in wanted}
    return LoadedModel(d, m, exports, heads, {h.stage: h.threshold for h in wanted}, embedders, blobs)


def _exports(
    m: Manifest, arrays: dict[str, dict[str, np.ndarray]], blobs: dict[str, bytes], where: str
) -> dict[str, HeadExport]:
    """Each head's arrays, checked against the manifest."""
    if list(m.labels) != sorted(set(m.labels)):  # training writes them so; any other order would swap answers
        raise ModelFileError("labels must be distinct and sorted, as training writes them", path=where)
    idf = arrays.get(m.lexical.file, {}).get("idf")
    if idf is None or idf.shape != (m.lexical.n_features,):
        raise ModelFileError("inconsistent model: idf shape", path=where)
    _check_numbers(idf, "lexical: idf", where)
    try:
        ex = strict_json.loads(blobs[m.examples.texts_file])
        texts, ex_labels = list(ex["texts"]), list(ex["labels"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"examples incomplete ({exc!r})", path=where) from None
    if not all(isinstance(t, str) and t for t in texts):
        raise ModelFileError("examples: every text must be a non-empty string", path=where)
    foreign = sorted({str(label) for label in ex_labels if not isinstance(label, str) or label not in m.labels})
    if foreign:  # shown to stage 3 as labeled examples: only the model's labels may reach its prompt
        raise ModelFileError(f"examples: labels not among the model's labels: {foreign[:5]}", path=where)
    vectors = arrays.get(m.examples.vectors_file, {}).get("embeddings")
    if vectors is None or vectors.shape != (len(texts), EMBEDDER_DIM) or len(texts) != len(ex_labels):
        raise ModelFileError("inconsistent model: examples shape", path=where)
    _check_numbers(vectors, "examples: embeddings", where)
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
        # a head with n-gram weight 0 was fitted on the embeddings alone (`features.combine`)
        width = sum(dims[e] for e in h.embedders) + (m.lexical.n_features if h.lexical_weight else 0)
        if coef is None or coef.shape != (rows, width):
            raise ModelFileError(
                f"inconsistent model: {'coef' if h.stage == EMBEDDING else h.stage + ' head'} shape", path=where
            )
        if intercept is None or intercept.shape != (rows,):
            raise ModelFileError(f"inconsistent model: {h.stage} intercept shape", path=where)
        _check_numbers(coef, f"heads[{h.stage}]: its weights", where)
        _check_numbers(intercept, f"heads[{h.stage}]: its intercept", where)
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


def _check_numbers(a: np.ndarray, what: str, where: str) -> None:
    """Refuse an array that is not of finite floating-point numbers (strings, objects, NaN, infinities)."""
    if not np.issubdtype(a.dtype, np.floating):
        raise ModelFileError(f"{what} must be floating-point numbers, not {a.dtype}", path=where)
    if not np.all(np.isfinite(a)):
        raise ModelFileError(f"{what} hold NaN or infinite numbers", path=where)


def _serving(enc: Encoder) -> Embedder | None:
    """The serving embedder of `enc`: None for the base encoder (the process default, chosen at first use)."""
    if enc.name == "base":
        return None
    from ..serving.embedding import serving_embedder

    return serving_embedder(enc.name)


def installed_sha256(name: str) -> str | None:
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
    here = installed_sha256(file)
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


def _parse_npz(data: bytes, name: str, where: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # zip, format or object-array errors: the file is not ours
        raise ModelFileError(f"{name}: unreadable array file ({type(exc).__name__})", path=where) from None
