"""Manifests of the older formats, 1 and 2 (one MiniLM head, an optional `static_head` section in place of the
list of heads), read as format 3; `load.load_manifest` upgrades them on load and `save.convert` rewrites one."""

from __future__ import annotations

from ..results import EMBEDDING, STATIC
from ..serving.embedding import EMBEDDER_DIM, EMBEDDER_ID
from ..serving.static_embedding import STATIC_ID
from .manifest import FORMAT_VERSION, KIND

__all__ = ["upgrade_manifest"]


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
