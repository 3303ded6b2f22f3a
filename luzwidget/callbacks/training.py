"""Callbacks that change the step: gradient clipping and mixed precision (luz's
``gradient_clip``, ``mixed_precision``)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import torch

from luzwidget.core.accumulate import steps_now
from luzwidget.core.callback import Callback
from luzwidget.core.exceptions import ConfigError

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["SCALER_BUFFER", "GradientClip", "MixedPrecision"]

SCALER_BUFFER = "grad_scaler"
"""``ctx.buffers`` key of the active ``torch.amp.GradScaler`` (set by MixedPrecision on CUDA).

A callback that reads gradients before the optimizer step must unscale them first:
``scaler.unscale_(ctx.opt)`` (once per optimizer and step), as :class:`GradientClip` does.
"""


class GradientClip(Callback):
    """Clip the gradients' norm before each optimizer step (``clip_grad_norm_``).

    Each optimizer's parameters are clipped before its own step (with gradient
    accumulation, the group's summed gradients, once per step). A module's own
    ``step(ctx)`` is clipped when it steps through ``ctx.step_opt(opt)``. With
    :class:`MixedPrecision` on CUDA the gradients are unscaled first, so ``max_norm`` is in
    the gradients' true units.

    Parameters
    ----------
    max_norm
        The largest norm allowed (>= 0; 0 zeroes the gradients, as in torch and luz).
    norm_type
        Which p-norm (``float("inf")`` for the max norm).

    Attributes
    ----------
    last_norm : torch.Tensor or None
        The norm of the last step's gradients, before clipping.
    """

    acts_on_step = True  # a custom step(ctx) must call ctx.step_opt(opt) for the clip

    def __init__(self, max_norm: float = 1, norm_type: float = 2) -> None:
        self.max_norm = _number(max_norm, "max_norm", zero_ok=True)
        self.norm_type = _number(norm_type, "norm_type", zero_ok=False)
        self.last_norm: torch.Tensor | None = None

    def on_train_batch_before_step(self, ctx: Context) -> None:
        optimizers = [ctx.opt] if ctx.opt is not None else list(ctx.optimizers.values())
        scaler = ctx.buffers.get(SCALER_BUFFER)
        params = []
        for opt in optimizers:
            if scaler is not None and scaler.is_enabled():
                scaler.unscale_(opt)
            params += [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        self.last_norm = torch.nn.utils.clip_grad_norm_(params, self.max_norm, self.norm_type)

    def __repr__(self) -> str:
        return f"GradientClip(max_norm={self.max_norm}, norm_type={self.norm_type})"


def _number(value: object, name: str, zero_ok: bool) -> float:
    """``value`` as a float if it is a number > 0 (>= 0 with ``zero_ok``); else ConfigError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (value >= 0 if zero_ok else value > 0)
    ):
        bound = ">= 0" if zero_ok else "> 0"
        raise ConfigError(
            f"GradientClip: {name} must be a number {bound}, got {value!r}; for example "
            f"GradientClip({name}=1)."
        )
    return float(value)


class MixedPrecision(Callback):
    """Train with automatic mixed precision (``torch.amp``).

    On CUDA: forward and loss under ``torch.autocast(dtype=float16)``, and a
    ``torch.amp.GradScaler`` scales the loss before backward, steps the optimizers through
    the scaler and updates the scale once per optimizer step. On the CPU (and other
    devices): ``bfloat16`` autocast, which needs no scaler. A module's own ``step(ctx)``
    gets it through ``with ctx.autocast():``, ``ctx.backward(loss)`` and
    ``ctx.step_opt(opt)`` (see the guide's "Batches" page). The scaler is in
    ``ctx.buffers["grad_scaler"]`` while training (see :data:`SCALER_BUFFER`); the context
    is restored at the end of the fit.

    Parameters
    ----------
    **scaler_kw
        Passed to ``torch.amp.GradScaler`` (e.g. ``init_scale``, ``growth_interval``).
    """

    weight = -50  # set up the step before user callbacks run at on_fit_begin

    def __init__(self, **scaler_kw: Any) -> None:
        self.scaler_kw = scaler_kw
        self.scaler: torch.amp.GradScaler | None = None
        self._saved: tuple[Any, Any, Any] | None = None
        self._pending: dict[str, Any] | None = None

    def on_fit_begin(self, ctx: Context) -> None:
        device = ctx.device if ctx.device is not None else torch.device("cpu")
        self._saved = (ctx.autocast, ctx.backward, ctx.step_opt)
        if device.type != "cuda":
            ctx.autocast = functools.partial(
                torch.autocast, device_type=device.type, dtype=torch.bfloat16
            )
            return
        ctx.autocast = functools.partial(torch.autocast, device_type="cuda", dtype=torch.float16)
        scaler = torch.amp.GradScaler("cuda", **self.scaler_kw)
        if self._pending:
            scaler.load_state_dict(self._pending)
            self._pending = None
        backward = ctx.backward or _backward
        ctx.backward = lambda loss: backward(scaler.scale(loss))
        ctx.step_opt = scaler.step
        ctx.buffers = {**ctx.buffers, SCALER_BUFFER: scaler}
        self.scaler = scaler

    def on_train_batch_end(self, ctx: Context) -> None:
        if self.scaler is not None and steps_now(ctx):  # accumulation: after a step only
            self.scaler.update()

    def on_fit_end(self, ctx: Context) -> None:
        if self._saved is not None:
            ctx.autocast, ctx.backward, ctx.step_opt = self._saved
            self._saved = None
        ctx.buffers = {k: v for k, v in ctx.buffers.items() if k != SCALER_BUFFER}

    def state_dict(self) -> dict[str, Any]:
        return dict(self.scaler.state_dict()) if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None:
            self.scaler.load_state_dict(state)
        else:
            self._pending = dict(state)

    def __repr__(self) -> str:
        kw = ", ".join(f"{k}={v!r}" for k, v in self.scaler_kw.items())
        return f"MixedPrecision({kw})"


def _backward(loss: torch.Tensor) -> None:
    loss.backward()
