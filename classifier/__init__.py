"""taskrouter's classifier: keyword rules → embedding classifier → LLM classifier.

>>> from classifier import Cascade, TaskClassifier
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigError,
    DataError,
    InvalidParameterError,
    LabelError,
    ModelFileError,
    QueryError,
    TaskRouterError,
)

_LAZY = {  # name -> module; imported on first use so that `import classifier` stays cheap
    "Cascade": "serving.cascade",
    "Decision": "results",
    "StageResult": "results",
    "TaskClassifier": "training.estimator",
    "Dataset": "data",
    "EscalationBudget": "serving.budget",
    "check_query": "data",
    "load_dataset": "data",
    "LLMClassifier": "serving.llm",
    "KeywordRules": "serving.keywords",
    "train_cascade": "training.train",
}

__all__ = [
    "Cascade",
    "ConfigError",
    "DataError",
    "Dataset",
    "Decision",
    "EscalationBudget",
    "InvalidParameterError",
    "KeywordRules",
    "LLMClassifier",
    "LabelError",
    "ModelFileError",
    "QueryError",
    "StageResult",
    "TaskClassifier",
    "TaskRouterError",
    "check_query",
    "load_dataset",
    "train_cascade",
]

# boilerplate: the public names, imported lazily (PEP 562); type checkers read them here.
if TYPE_CHECKING:
    from .data import Dataset, check_query, load_dataset
    from .results import Decision, StageResult
    from .serving.budget import EscalationBudget
    from .serving.cascade import Cascade
    from .serving.keywords import KeywordRules
    from .serving.llm import LLMClassifier
    from .training.estimator import TaskClassifier
    from .training.train import train_cascade


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
