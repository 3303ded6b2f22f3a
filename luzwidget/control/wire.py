"""Values off the wire: what a dashboard or an attached notebook sends, turned into Python.

Nothing received is evaluated. Numbers come as JSON numbers or as text matched against a
regular expression and converted with ``float``/``int``; they must be finite and fit in
64 bits. Whether a value is allowed (an lr > 0, max_epochs >= the epoch) is for the Run API
to say; these parsers only refuse what is not data of the right kind. Every refusal is an
:class:`~luzwidget.core.exceptions.EditError` naming the field, what was expected and a
quote of what was sent.
"""

from __future__ import annotations

import math
import re
from typing import Any

from luzwidget.core.events import Event
from luzwidget.core.exceptions import EditError
from luzwidget.core.values import quote as quote_value

__all__ = [
    "MAX_INT",
    "back",
    "count",
    "event",
    "flag",
    "name",
    "number",
    "quote",
    "scalar",
    "target",
    "whole",
]

_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INT = re.compile(r"[+-]?\d+", re.ASCII)
_MAX_TEXT = 40
_MAX_NAME = 200
_MAX_QUOTE = 80
MAX_INT = 2**63 - 1
"""The largest whole number taken off the wire (a 64-bit int)."""


def quote(value: Any) -> str:
    """How a refusal names what was sent (80 characters at most)."""
    return quote_value(value, _MAX_QUOTE)


def _text(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise EditError(f"{field}: expected a number, got {type(value).__name__} {quote(value)}.")
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise EditError(f"{field}: {quote(value)} is too large; expected at most {MAX_INT}.")
    text = str(value).strip()
    if not text:
        raise EditError(f"{field}: empty; type a number.")
    if len(text) > _MAX_TEXT:
        raise EditError(f"{field}: {len(text)} characters is too long for a number.")
    return text


def number(value: Any, field: str) -> float:
    """``"1e-3"`` or ``0.001`` -> ``0.001``: a finite number (the run decides if allowed)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise EditError(f"{field}: {quote(value)} is not finite; give a finite number.")
    text = _text(value, field)
    if not _FLOAT.fullmatch(text):
        raise EditError(f"{field}: {text!r} is not a number; type e.g. 0.01 or 1e-3.")
    out = float(text)
    if not math.isfinite(out):
        raise EditError(f"{field}: {text!r} is too large for a number; give a finite one.")
    return out


def whole(value: Any, field: str) -> int:
    """``"12"`` or ``12`` -> ``12``: a whole number in 64 bits (the run decides if allowed)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    text = _text(value, field)
    if not _INT.fullmatch(text):
        raise EditError(f"{field}: {text!r} is not a whole number; type e.g. 10.")
    out = int(text)
    if abs(out) > MAX_INT:
        raise EditError(f"{field}: {text!r} is too large; expected at most {MAX_INT}.")
    return out


def count(value: Any, field: str) -> int:
    """A whole number >= 1 (how many batches or epochs, ``n``)."""
    out = whole(value, field)
    if out < 1:
        raise EditError(f"{field}: expected a whole number >= 1, got {out}.")
    return out


def flag(value: Any, field: str) -> bool:
    """``True``/``False`` (or the text ``"true"``/``"false"``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise EditError(f"{field}: expected true or false, got {quote(value)}.")


def name(value: Any, field: str) -> str:
    """A name sent as text (a command, an optimizer, a field, an event)."""
    if not isinstance(value, str):
        kind = "missing" if value is None else f"got {type(value).__name__} {quote(value)}"
        raise EditError(f"{field}: expected a name (text); {kind}.")
    if len(value) > _MAX_NAME:
        raise EditError(f"{field}: a name of {len(value)} characters is too long.")
    return value


def event(value: Any, field: str) -> Event:
    """An event by name, with or without ``on_`` (a condition is code: refused)."""
    if callable(value) and not isinstance(value, str):
        raise EditError(
            f"{field}: an event name only (a condition is code: add it in the training "
            f"script), got {quote(value)}."
        )
    try:
        return Event.parse(name(value, field), argument=field)
    except EditError:
        raise
    except ValueError as exc:
        raise EditError(str(exc)) from None


def target(value: Any, field: str) -> str | Event:
    """Where a step goes: ``"event"``, ``"batch"``, ``"epoch"`` or an event name."""
    if value in ("event", "batch", "epoch"):
        return str(value)
    return event(value, field)


def scalar(value: Any, field: str) -> bool | int | float | str | None:
    """A plain JSON scalar (the field it is for decides what it must be)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return whole(value, field) if isinstance(value, int) else number(value, field)
    raise EditError(
        f"{field}: expected a number, text or true/false, got {type(value).__name__} "
        f"{quote(value)}."
    )


def back(value: Any, field: str) -> str:
    """What a step back steps over: ``"batch"``, ``"event"`` or ``"epoch"``."""
    text = name(value, field)
    if text not in ("batch", "event", "epoch"):
        raise EditError(f"{field}: expected 'batch', 'event' or 'epoch', got {quote(value)}.")
    return text
