"""The exceptions of the classifier package.

    TaskRouterError
    ├── DataError (ValueError)            bad training/evaluation data: `.path`, `.line`, `.field`
    ├── QueryError (ValueError)           a query that cannot be classified: `.field`
    ├── LabelError (ValueError)           an unknown label or a label set that cannot be trained
    ├── ModelFileError (ValueError)       a saved model that is missing, foreign, truncated or tampered with
    ├── ConfigError (ValueError)          a malformed configuration: `.path` names the field
    └── InvalidParameterError (ValueError) a function's parameter out of its range: `.parameter`, `.caller`

`routing.errors` adds the completion errors under the same base.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "InvalidParameterError",
    "LabelError",
    "ModelFileError",
    "QueryError",
    "TaskRouterError",
]


class TaskRouterError(Exception):
    """Base of every error raised on purpose by taskrouter."""


class DataError(TaskRouterError, ValueError):
    """A data file or record is malformed; `line` is 1-based when known."""

    def __init__(
        self, message: str, *, path: str | None = None, line: int | None = None, field: str | None = None
    ) -> None:
        where = ":".join(str(p) for p in (path, line) if p is not None)
        super().__init__(f"{where}: {message}" if where else message)
        self.path, self.line, self.field = path, line, field


class QueryError(TaskRouterError, ValueError):
    """A query is empty, too long or not a string."""

    def __init__(self, message: str, *, field: str = "query") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class LabelError(TaskRouterError, ValueError):
    """A label is unknown, or a label set cannot be trained."""


class ModelFileError(TaskRouterError, ValueError):
    """A saved model failed its format or integrity checks; nothing from it was used."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class ConfigError(TaskRouterError, ValueError):
    """A configuration is malformed; `path` is the dotted field, e.g. `taskrouter.pools.math`."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class InvalidParameterError(TaskRouterError, ValueError):
    """A parameter of a public function is out of its range; the message names it, its value and the range."""

    def __init__(self, parameter: str, value: object, expected: str, *, caller: str | None = None) -> None:
        of = f" of {caller}" if caller else ""
        got = " ".join(repr(value).split())  # one line, and short: an array or a dataset is not printed whole
        got = got if len(got) <= 80 else got[:77] + "..."
        super().__init__(f"The {parameter!r} parameter{of} must be {expected}. Got {got} instead.")
        self.parameter, self.caller = parameter, caller
