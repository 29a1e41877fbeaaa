"""A toy stage from one module, the way a user adds one: very short queries go to one label.

It keeps its setting in a file of its own (`length_rule.json`), so saving and loading go through the model's
checked files like every other stage's. Nothing in `classifier/` or `routing/` names it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from classifier.results import StageResult
from classifier.serving.head import BatchContext
from classifier.serving.stages import LoadContext, Stage, StageManifest

FILE = "length_rule.json"


class LengthRuleStage(Stage):
    """Answers `label` for queries of at most `max_chars` characters; the rest pass on."""

    name = "length"
    kind = "length_rule"

    def __init__(self, label: str, max_chars: int) -> None:
        self.label, self.max_chars = label, max_chars

    def classify_batch(self, texts: Sequence[str], ctx: BatchContext) -> list[StageResult]:
        return [
            StageResult(self.name, self.label if len(t) <= self.max_chars else None, None, 0.0, f"{len(t)} chars")
            for t in texts
        ]

    def to_manifest(self) -> StageManifest:
        setting = json.dumps({"label": self.label, "max_chars": self.max_chars}).encode()
        return StageManifest(self.name, self.kind, {"file": FILE}, {FILE: setting})

    @classmethod
    def from_manifest(cls, entry: StageManifest, context: LoadContext) -> LengthRuleStage:
        setting = json.loads(context.files[entry.config["file"]])
        return cls(setting["label"], int(setting["max_chars"]))


@dataclass
class LengthRule:
    """Trainer: the longest length at which every training row that short has `label`."""

    label: str

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> LengthRuleStage:
        others = [len(t) for t, y in zip(texts, labels, strict=True) if y != self.label]
        return LengthRuleStage(self.label, min(others, default=0) - 1)
