"""Checks that turn a wrong setup into an error naming the argument, what it got and the fix.

They run where the thing is built (the module, the optimizer) or once per fit (the first
loss), never per batch. The original error is kept as ``__cause__``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from luzwidget.core.exceptions import ConfigError

__all__ = ["build_module", "build_optimizer", "check_opt_hparams", "check_target_shape"]

# Losses that compare pred and target element by element: a target of another shape is
# broadcast (torch only warns), which silently trains on the wrong pairs.
ELEMENTWISE_LOSSES: tuple[type[nn.Module], ...] = (
    nn.MSELoss,
    nn.L1Loss,
    nn.SmoothL1Loss,
    nn.HuberLoss,
    nn.BCELoss,
    nn.BCEWithLogitsLoss,
    nn.SoftMarginLoss,
    nn.PoissonNLLLoss,
    nn.KLDivLoss,
)


def check_opt_hparams(opt_hparams: Mapping[str, Any]) -> None:
    """Refuse an ``lr`` that is not a finite number, as ``run.set_lr`` does.

    Raises
    ------
    ConfigError
        If ``lr`` is a number but inf or nan (a tensor lr or another hparam is left to the
        optimizer, which checks it when it is built).
    """
    lr = opt_hparams.get("lr")
    if isinstance(lr, float | int) and not isinstance(lr, bool) and not math.isfinite(lr):
        raise ConfigError(
            f"set_opt_hparams(lr={lr!r}): the learning rate must be a finite number; "
            "pass e.g. set_opt_hparams(lr=1e-3)."
        )


def build_module(cls: type[nn.Module], hparams: Mapping[str, Any]) -> nn.Module:
    """``cls(**hparams)``; the constructor's error becomes a ConfigError naming the hparams."""
    try:
        return cls(**hparams)
    except Exception as exc:
        raise ConfigError(
            f"building {cls.__name__}(**{dict(hparams)}) failed: {type(exc).__name__}: "
            f"{_first_line(exc)}. Set the constructor's arguments with .set_hparams(...)."
        ) from exc


def build_optimizer(
    factory: Callable[..., Any], params: Iterable[Any], opt_hparams: Mapping[str, Any]
) -> Any:
    """``factory(params, **opt_hparams)``; its error becomes a ConfigError naming them."""
    name = getattr(factory, "__name__", repr(factory))
    try:
        return factory(params, **opt_hparams)
    except Exception as exc:
        raise ConfigError(
            f"building the optimizer {name}(params, **{dict(opt_hparams)}) failed: "
            f"{type(exc).__name__}: {_first_line(exc)}. Set its arguments with "
            ".set_opt_hparams(...)."
        ) from exc


def check_target_shape(loss_fn: Any, pred: Any, target: Any) -> None:
    """Refuse a target that an element-wise loss would broadcast against the prediction.

    pred ``(N, 1)`` and target ``(N,)`` with ``nn.MSELoss()`` compute an ``(N, N)`` loss
    (torch only warns). Called on the first training batch of a fit.

    Raises
    ------
    ValueError
        Naming both shapes and how to make them match.
    """
    if not isinstance(loss_fn, ELEMENTWISE_LOSSES):
        return
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        return
    if pred.shape == target.shape:
        return
    try:
        torch.broadcast_shapes(pred.shape, target.shape)
    except RuntimeError:
        return  # the loss itself raises, naming both sizes
    p, t = tuple(pred.shape), tuple(target.shape)
    fix = (
        "squeeze the prediction (pred.squeeze(-1) in forward) or give the target a last "
        "dimension of 1 (y.unsqueeze(-1) / y.reshape(-1, 1) in the data)"
        if p[:-1] == t and p[-1:] == (1,)
        else "make the data's target the shape of the model's output"
    )
    raise ValueError(
        f"the prediction has shape {p} and the target {t}: {type(loss_fn).__name__} would "
        f"broadcast them to {tuple(torch.broadcast_shapes(pred.shape, target.shape))} and "
        f"compare every prediction with every target. To fix it, {fix}."
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or ["(no message)"])[0].rstrip(".")
