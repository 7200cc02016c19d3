"""Type and domain checks shared by the public entry points.

A value of the wrong type raises the ``*TypeError`` flavour of the error class given (also a
``TypeError``), a value out of its domain the class itself (a ``ValueError``); both name the
field. A number is a real number that is not a bool (``True`` is not a price): Python and
numpy ints and floats, ``fractions.Fraction``, ``decimal.Decimal``. Strings are not numbers
here (numeric text in book columns is parsed by :mod:`crossmargin.book`, not by these).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import numpy as np

from crossmargin.exceptions import (
    ConfigError,
    ConfigTypeError,
    PriceError,
    PriceTypeError,
)

ErrorClass = type[ConfigError] | type[PriceError]

_TYPE_ERRORS: dict[type[Exception], type[Exception]] = {
    ConfigError: ConfigTypeError,
    PriceError: PriceTypeError,
}


def type_error(error: ErrorClass) -> Any:
    """The ``*TypeError`` class of ``error`` (ConfigError → ConfigTypeError...)."""
    return _TYPE_ERRORS.get(error, error)


def show(value: Any, width: int = 40) -> str:
    """A short repr (a 400-digit int or a long list is cut; numpy scalars as Python's)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**width:
        return f"an integer of {len(str(abs(value)))} digits"
    r = repr(value)
    return r if len(r) <= width else r[: width - 1] + "…"


def is_number(value: Any) -> bool:
    """A real number and not a bool (numpy's included)."""
    if isinstance(value, bool | np.bool_):
        return False
    return isinstance(value, numbers.Real | Decimal)


def number(value: Any, field: str, error: ErrorClass = ConfigError) -> float:
    """``value`` as a float: a wrong type → the type error, beyond the float range → ``error``."""
    if not is_number(value):
        raise type_error(error)(f"{field}: {show(value)} is not a number", field=field)
    try:
        return float(value)
    except OverflowError:
        raise error(f"{field}: {show(value)} is beyond the float range", field=field) from None


def array(value: Any, field: str, error: ErrorClass = ConfigError) -> np.ndarray:
    """Numbers (one, or nested sequences / arrays of them) as a float64 array: text, bools,
    None, complex or ragged nesting → the type error naming the first bad element; a Python
    int beyond the float range → ``error``. Values are not range-checked here."""
    bad_type = type_error(error)
    if isinstance(value, str | bytes | Mapping) or value is None:
        raise bad_type(
            f"{field}: {show(value)} is not a number or an array of numbers", field=field
        )
    try:
        # Lists as objects, so that a bool among floats is seen (numpy would make it 1.0).
        kind = object if isinstance(value, list | tuple) else None
        raw = value if isinstance(value, np.ndarray) else np.asarray(value, dtype=kind)
    except (TypeError, ValueError):  # ragged nesting
        raise bad_type(
            f"{field}: expected a number or an array of numbers, got {type(value).__name__}",
            field=field,
        ) from None
    if raw.dtype.kind == "O":
        for idx, x in np.ndenumerate(raw):
            if not is_number(x):
                f = field + "".join(f"[{i}]" for i in idx)
                raise bad_type(f"{f}: {show(x)} is not a number", field=f)
    elif raw.dtype.kind not in "iuf":  # bool, text, complex, dates
        what = show(value) if raw.ndim == 0 else f"an array of {raw.dtype}"
        raise bad_type(f"{field}: expected numbers, got {what}", field=field)
    try:
        return np.asarray(raw, dtype=np.float64)
    except OverflowError:
        raise error(f"{field}: a value is beyond the float range", field=field) from None


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"finite and {'>' if lo_open else '≥'} {lo:g}"
    if hi is not None:
        return f"finite and {'<' if hi_open else '≤'} {hi:g}"
    return "finite"


def bounded(
    value: Any,
    field: str,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    error: ErrorClass = ConfigError,
) -> float:
    """A finite number within [lo, hi] (ends open as asked), as a float."""
    x = number(value, field, error)
    ok = math.isfinite(x)
    if ok and lo is not None:
        ok = x > lo if lo_open else x >= lo
    if ok and hi is not None:
        ok = x < hi if hi_open else x <= hi
    if not ok:
        raise error(f"{field}: {x} must be {_interval(lo, hi, lo_open, hi_open)}", field=field)
    return x


def integer(value: Any, field: str, lo: int, hi: int, error: ErrorClass = ConfigError) -> int:
    """An int (Python or numpy, not a bool) in [lo, hi]."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise type_error(error)(f"{field}: {show(value)} is not an integer", field=field)
    n = int(value)
    if not lo <= n <= hi:
        raise error(f"{field}: {show(n)} must be an integer in [{lo}, {hi}]", field=field)
    return n


def mapping(
    value: Any, field: str, what: str, error: ErrorClass = ConfigError
) -> Mapping[Any, Any]:
    """``value`` if it is a mapping whose keys are strings, else the type error."""
    if not isinstance(value, Mapping):
        raise type_error(error)(
            f"{field}: expected a mapping {what}, got {type(value).__name__}", field=field
        )
    for key in value:
        if not isinstance(key, str):
            f = f"{field}[{show(key)}]"
            raise type_error(error)(f"{f}: the key {show(key)} is not a symbol (str)", field=f)
    return value


def sequence(value: Any, field: str, what: str, error: ErrorClass = ConfigError) -> Any:
    """``value`` if it is a list-like sequence (not a str, bytes or mapping)."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence | np.ndarray):
        raise type_error(error)(
            f"{field}: expected a list of {what}, got {type(value).__name__}", field=field
        )
    return value


def text(value: Any, field: str, allowed: Sequence[str], error: ErrorClass = ConfigError) -> str:
    """One of the ``allowed`` strings."""
    if not isinstance(value, str):
        raise type_error(error)(
            f"{field}: {show(value)} is not a string (one of {', '.join(allowed)})", field=field
        )
    if value not in allowed:
        raise error(f"{field}: {value!r} is not one of {', '.join(allowed)}", field=field)
    return value


__all__ = [
    "array",
    "bounded",
    "integer",
    "is_number",
    "mapping",
    "number",
    "sequence",
    "show",
    "text",
]
