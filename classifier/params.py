"""Parameters checked at the door, in the way of scikit-learn's `utils._param_validation`.

A public entry point keeps a table next to it, parameter name -> the constraints of which the value must meet
one, and calls `validate_params` first, before any work:

    _TRAIN_PARAMS = {"max_error": [None, SHARE], "random_state": [Interval(Integral, 0, None, closed="left")]}

    def train_cascade(data, *, max_error=None, random_state=0):
        validate_params(_TRAIN_PARAMS, locals(), caller="train_cascade")

A constraint is None (the value None), a type (an instance of it; a bool is not an int or a float), an
`Interval` or an `Options`. A value that meets none raises `InvalidParameterError` naming the parameter, the
function, what it accepts and the value: "The 'max_error' parameter of train_cascade must be a float in [0, 1]
or None. Got 1.5 instead."
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from os import PathLike
from typing import Literal

from .errors import InvalidParameterError

__all__ = ["COUNT", "SEED", "SHARE", "THRESHOLD", "Constraint", "Interval", "Options", "validate_params"]


@dataclass(frozen=True)
class Interval:
    """A finite number of `kind` (Integral or Real) between `left` and `right` (None: unbounded on that side)."""

    kind: type
    left: float | None
    right: float | None
    closed: Literal["left", "right", "both", "neither"]
    shown_right: float | None = None
    """The upper bound the message names, where `right` allows for rounding above it (see THRESHOLD)."""

    def __post_init__(self) -> None:
        if self.kind not in (Integral, Real):
            raise TypeError(f"Interval kind must be Integral or Real, not {self.kind!r}")

    def is_satisfied_by(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        if isinstance(value, Integral):
            x: float | int = int(value)  # compared exactly: float() of 10**400 overflows
        else:
            try:
                x = float(value)  # type: ignore[arg-type]  # a Real, checked above
            except OverflowError:  # e.g. Fraction(10**400): beyond every float, so infinite
                return False
        if self.left is not None and not (x >= self.left if self.closed in ("left", "both") else x > self.left):
            return False
        if self.right is not None and not (x <= self.right if self.closed in ("right", "both") else x < self.right):
            return False
        return isinstance(x, int) or math.isfinite(x)  # NaN and the infinities meet no interval, bounded or not

    def __str__(self) -> str:
        noun = "an int" if self.kind is Integral else "a float"
        right = self.right if self.shown_right is None else self.shown_right
        low = "[" if self.closed in ("left", "both") else "("
        high = "]" if self.closed in ("right", "both") else ")"
        if self.left is not None and right is not None:
            return f"{noun} in {low}{_num(self.left)}, {_num(right)}{high}"
        if self.left is not None:
            return f"{noun} {'>=' if low == '[' else '>'} {_num(self.left)}"
        if right is not None:
            return f"{noun} {'<=' if high == ']' else '<'} {_num(right)}"
        return noun


@dataclass(frozen=True)
class Options:
    """One of a few values (strings, usually)."""

    values: Collection[object]

    def is_satisfied_by(self, value: object) -> bool:
        try:
            return value in self.values
        except TypeError:  # an unhashable value is none of them
            return False

    def __str__(self) -> str:
        return f"one of {sorted(map(str, self.values))}"


Constraint = Interval | Options | type | None

COUNT = Interval(Integral, 0, None, closed="left")
"""A number of things, 0 included."""
SEED = Interval(Integral, 0, 2**32 - 1, closed="both")
"""A random seed, as numpy and scikit-learn take it."""
SHARE = Interval(Real, 0, 1, closed="both")
"""A share, a rate or a probability."""
THRESHOLD = Interval(Real, 0, 1 + 1e-6, closed="both", shown_right=1)
"""A confidence threshold: a share, or just above 1, which escalates everything (`threshold.choose_threshold`)."""


def validate_params(
    constraints: Mapping[str, Sequence[Constraint]],
    values: Mapping[str, object],
    *,
    caller: str,
    exclusive: Iterable[tuple[str, str]] = (),
    name_of: Callable[[str], str] = str,
) -> None:
    """Raise InvalidParameterError for the first parameter of `caller` whose value meets none of its constraints.

    `values` holds every parameter of the table (call it first thing with `locals()`); each pair in `exclusive`
    names two parameters of which at most one may be given (not None). `name_of` turns a parameter's name into the
    one the message shows (the CLI shows its options: `--max-error`).
    """
    for name, options in constraints.items():
        if name not in values:
            raise TypeError(f"{caller}: the constraint table names {name!r}, which is not one of its parameters")
        value = values[name]
        if not any(_satisfied(c, value) for c in options):
            raise InvalidParameterError(name_of(name), value, _describe(options), caller=caller)
    for first, second in exclusive:
        if values[first] is not None and values[second] is not None:
            expected = f"left out when {name_of(first)!r} is given (give at most one of them)"
            raise InvalidParameterError(name_of(second), values[second], expected, caller=caller)


def _satisfied(constraint: Constraint, value: object) -> bool:
    if constraint is None:
        return value is None
    if isinstance(constraint, type):
        return isinstance(value, constraint) and not (isinstance(value, bool) and constraint in (int, float))
    return constraint.is_satisfied_by(value)


def _describe(options: Sequence[Constraint]) -> str:
    words = [_word(c) for c in options if c is not None] + (["None"] if None in options else [])
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _word(constraint: Interval | Options | type) -> str:
    if isinstance(constraint, type):
        return {bool: "a bool", int: "an int", float: "a float", str: "a str", PathLike: "a path"}.get(
            constraint, f"an instance of {constraint.__name__}"
        )
    return str(constraint)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
