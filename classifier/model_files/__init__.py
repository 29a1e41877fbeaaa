"""A model as a directory on disk: `manifest.json` plus arrays, never pickle.

manifest   the manifest's schema (format 3)
save       save_model; check_model_out (where a model may be written); convert (an older format rewritten)
load       load_manifest (every file hashed before anything is parsed), load_model (the served heads),
           built_in_stages (the stages of a manifest that lists none)
loaded     LoadedModel, what load_model returns and every stage's from_manifest reads
probes     the static table's probe vectors, which tell at load whether it is the one the heads were trained on
upgrade    manifests of format 1 and 2 read as format 3
"""

# boilerplate: re-exports of the modules' public names (the same lists as their imports and `__all__`).
from .load import DEFAULT_MODEL_DIR, LoadedModel, built_in_stages, load_manifest, load_model
from .manifest import (
    FORMAT_VERSION,
    KIND,
    MANIFEST,
    READABLE_VERSIONS,
    Calibration,
    CascadeSpec,
    EmbedderSpec,
    ExamplesSpec,
    FileRecord,
    HeadSpec,
    LexicalSpec,
    Manifest,
    ScopeSpec,
    StageEntry,
)
from .probes import MIN_PROBE_COSINE, STATIC_PROBES
from .save import check_model_out, convert, save_model
from .upgrade import upgrade_manifest

__all__ = [
    "DEFAULT_MODEL_DIR",
    "FORMAT_VERSION",
    "KIND",
    "MANIFEST",
    "MIN_PROBE_COSINE",
    "READABLE_VERSIONS",
    "STATIC_PROBES",
    "Calibration",
    "CascadeSpec",
    "EmbedderSpec",
    "ExamplesSpec",
    "FileRecord",
    "HeadSpec",
    "LexicalSpec",
    "LoadedModel",
    "Manifest",
    "ScopeSpec",
    "StageEntry",
    "built_in_stages",
    "check_model_out",
    "convert",
    "load_manifest",
    "load_model",
    "save_model",
    "upgrade_manifest",
]
