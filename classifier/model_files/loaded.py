"""What `load_model` returns: a verified model, the type every stage's `from_manifest` reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..serving.embedding import Embedder
from ..serving.head import HeadExport, LinearHead
from .manifest import Manifest

__all__ = ["LoadedModel"]


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
