"""One value as a Python number or as text: the scalar unwrap and the loss as text.

:func:`as_scalar` is the one place a one-element tensor (or numpy value) becomes a number
(metrics, monitors, loggers, the dashboard's stream); :func:`loss_text` is how ``ctx.loss``
reads in progress bars, breakpoint reasons and reports.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["as_scalar", "loss_text"]


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
