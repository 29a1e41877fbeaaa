"""Stage 1: high-precision keyword rules, kept as data (YAML) and measured on the training data."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path

import yaml

from ..errors import ConfigError
from ..results import StageResult

__all__ = ["DEFAULT_RULES_PATH", "KeywordRules", "Rule", "load_rules"]

DEFAULT_RULES_PATH = Path(__file__).parents[1] / "rules" / "default.yaml"
_SCAN_CHARS = 20_000  # rules look at the start of very long queries only


@dataclass(frozen=True)
class Rule:
    """One rule: a regular expression (or whole-word phrases) that implies `label`."""

    name: str
    label: str
    pattern: str
    veto: str | None = None
    enabled: bool = True
    hits: int | None = None
    precision: float | None = None

    def __post_init__(self) -> None:
        for name in ("name", "label", "pattern"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise TypeError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        if not isinstance(self.enabled, bool):  # "false" would switch a rule on
            raise TypeError(f"enabled must be true or false, got {self.enabled!r}")

    def compiled(self) -> re.Pattern[str]:
        return self._pattern

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        return re.compile(self.pattern)

    @cached_property
    def _veto(self) -> re.Pattern[str] | None:
        return re.compile(self.veto) if self.veto else None

    def fires(self, text: str) -> bool:
        """True when the pattern matches and the veto (if any) does not."""
        head = text[:_SCAN_CHARS]
        return self._pattern.search(head) is not None and not (self._veto and self._veto.search(head))


def _phrases_pattern(phrases: Sequence[str]) -> str:
    # (?<!\w) / (?!\w): a phrase never matches inside a longer word ("tone" in "stone").
    alternatives = "|".join(re.escape(p.strip()).replace(r"\ ", r"\s+") for p in sorted(phrases, key=len, reverse=True))
    return rf"(?i)(?<!\w)(?:{alternatives})(?!\w)"


def load_rules(path: str | Path | None = None) -> list[Rule]:
    """Read a rule file; errors name the rule and field."""
    p = Path(path) if path is not None else DEFAULT_RULES_PATH
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read rule file ({exc})", path=str(p)) from None
    items = doc.get("rules") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ConfigError("must be a mapping with a 'rules' list", path=str(p))
    rules, names = [], set()
    for i, item in enumerate(items):
        where = f"rules[{i}]"
        if not isinstance(item, dict):
            raise ConfigError("must be a mapping", path=where)
        unknown = set(item) - {"name", "label", "pattern", "phrases", "unless", "enabled"}
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)}", path=where)
        name, label = item.get("name"), item.get("label")
        if not isinstance(name, str) or not name or name in names:
            raise ConfigError(f"name must be a unique non-empty string, got {name!r}", path=where)
        if not isinstance(label, str) or not label:
            raise ConfigError(f"label must be a non-empty string, got {label!r}", path=f"{where}.label")
        if ("pattern" in item) == ("phrases" in item):
            raise ConfigError("give exactly one of 'pattern' or 'phrases'", path=where)
        if "phrases" in item:
            phrases = item["phrases"]
            if (
                not isinstance(phrases, list)
                or not phrases
                or not all(isinstance(x, str) and x.strip() for x in phrases)
            ):
                raise ConfigError("must be a non-empty list of strings", path=f"{where}.phrases")
            pattern = _phrases_pattern(phrases)
        else:
            pattern = item["pattern"]
            if not isinstance(pattern, str) or not pattern:  # an empty pattern would match every query
                raise ConfigError(f"must be a non-empty string, got {pattern!r}", path=f"{where}.pattern")
        veto = None
        if "unless" in item:
            unless = item["unless"]
            if not isinstance(unless, list) or not unless or not all(isinstance(x, str) and x.strip() for x in unless):
                raise ConfigError("must be a non-empty list of strings", path=f"{where}.unless")
            veto = _phrases_pattern(unless)
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise ConfigError(f"invalid regular expression ({exc})", path=f"{where}.pattern") from None
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):  # bool("false") is True
            raise ConfigError(f"must be true or false, got {enabled!r}", path=f"{where}.enabled")
        names.add(name)
        rules.append(Rule(name=name, label=label, pattern=pattern, veto=veto, enabled=enabled))
    return rules


MIN_RULE_HITS = 3
"""A rule that fires on fewer training rows than this is switched off: its precision there says too little."""


class KeywordRules:
    """Stage 1: answers only when enabled rules fire and all agree on one label."""

    stage = "heuristic"

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = list(rules)
        self._active = [r for r in self.rules if r.enabled]

    def matches(self, text: str) -> list[Rule]:
        """The enabled rules that fire on `text`."""
        return [r for r in self._active if r.fires(text)]

    def classify(self, text: str) -> StageResult:
        start = time.perf_counter()
        fired = self.matches(text)
        labels = {r.label for r in fired}
        elapsed = time.perf_counter() - start
        if len(labels) == 1:
            return StageResult(self.stage, labels.pop(), 1.0, elapsed, "rule:" + ",".join(r.name for r in fired))
        note = "conflict:" + ",".join(r.name for r in fired) if fired else "no rule fired"
        return StageResult(self.stage, None, None, elapsed, note)

    def calibrate(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        precision_floor: float = 0.98,
        min_hits: int = MIN_RULE_HITS,
    ) -> KeywordRules:
        """Measure every rule on labeled data; switch off those below the floor or with fewer than `min_hits`."""
        measured = []
        for rule in self.rules:
            hit_labels = [y for t, y in zip(texts, labels, strict=True) if rule.fires(t)]
            hits = len(hit_labels)
            precision = sum(y == rule.label for y in hit_labels) / hits if hits else None
            enabled = rule.enabled and hits >= min_hits and precision is not None and precision >= precision_floor
            measured.append(replace(rule, hits=hits, precision=precision, enabled=enabled))
        return KeywordRules(measured)

    def to_list(self) -> list[dict]:
        """JSON-ready rules with their measurements (stored in the model manifest)."""
        return [asdict(r) for r in self.rules]

    @classmethod
    def from_list(cls, items: Sequence[dict]) -> KeywordRules:
        """Rebuild from `to_list` output; every pattern is compiled and checked."""
        rules = []
        for i, item in enumerate(items):
            try:
                rule = Rule(**item)
                rule.compiled()
                if rule.veto:
                    re.compile(rule.veto)
            except (TypeError, re.error) as exc:
                raise ConfigError(f"invalid stored rule ({exc})", path=f"cascade.rules[{i}]") from None
            rules.append(rule)
        return cls(rules)
