"""One value as a Python number or as text: the scalar unwrap and the loss as text.

:func:`as_scalar` is the one place a one-element tensor (or numpy value) becomes a number
(metrics, monitors, loggers, the dashboard's stream); :func:`loss_text` is how ``ctx.loss``
reads in progress bars, breakpoint reasons and reports.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["as_scalar", "loss_text", "quote"]


def as_scalar(value: Any) -> Any:
    """``value`` as a Python number if it is a one-element tensor or array; else unchanged.

    Examples
    --------
    >>> as_scalar(torch.tensor([2.5])), as_scalar(torch.tensor([1, 2])).tolist(), as_scalar("x")
    (2.5, [1, 2], 'x')
    """
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value
    if callable(getattr(value, "item", None)) and getattr(value, "size", None) == 1:
        return value.item()  # a numpy scalar or one-element array
    return value


def loss_text(loss: Any, name: str = "loss", spec: str = ".4f") -> str:
    """``ctx.loss`` as text: ``"loss=0.3100"``, ``"loss_a=0.3100, loss_b=1.2000"`` by optimizer.

    With ``name=""`` the values stand alone (``"0.31"``, ``"a=0.31, b=1.2"``); a value that
    is not one number shows as ``"..."``, and ``None`` as ``""``.
    """
    if loss is None:
        return ""
    if isinstance(loss, dict):
        return ", ".join(
            loss_text(v, f"{name}_{k}" if name else str(k), spec) for k, v in loss.items()
        )
    value = as_scalar(loss)
    shown = f"{value:{spec}}" if isinstance(value, int | float) else "..."
    return f"{name}={shown}" if name else shown


def quote(value: Any, width: int = 60) -> str:
    """How a message quotes what it was given: ``repr(value)``, cut to ``width`` characters;
    an int too long to print (or to convert: Python refuses over 4300 digits) by its number
    of digits, a value whose ``repr`` fails (a broken ``__repr__``, a structure nested too
    deep) by its type."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"{'a negative' if value < 0 else 'an'} int of about {digits} digits"
    try:
        text = repr(value)
    except Exception:  # a broken __repr__, a structure too deep to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= width else text[: width - 3] + "..."
