"""The run's edits, checked now and applied later: each check returns the edit to apply.

:meth:`~luzwidget.control.run.Run.set_lr` and :meth:`~luzwidget.control.run.Run.edit`
check their arguments in the caller's thread (a refused edit raises and changes nothing)
and hand the returned callable to the driver, which applies it at the next event boundary
(or at once, when nothing drives the run).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from traitlets import TraitError

from luzwidget.core.context import Context, finite_positive, optimizer_names
from luzwidget.core.engine import engine_of
from luzwidget.core.exceptions import ConfigError
from luzwidget.core.rebatch import check_batch_size

__all__ = ["EDITABLE", "field_edit", "lr_edit", "weight_decay_edit"]

EDITABLE = ("max_epochs", "min_epochs", "verbose", "loss_fn", "weight_decay", "batch_size")
"""What ``run.edit`` changes: context fields, and ``weight_decay`` (every parameter group of
every optimizer, at the next event boundary) and ``batch_size`` (the training loader,
re-made at the start of the next epoch: :mod:`luzwidget.core.rebatch`)."""


def lr_edit(ctx: Context, lr: Any, opt_name: str | None, keep_ratios: bool) -> Callable[[], None]:
    """Check a learning-rate edit (see ``Run.set_lr``); return what applies it."""
    value = finite_positive(lr, "lr")
    if not isinstance(keep_ratios, bool):
        raise ConfigError(
            f"set_lr: keep_ratios must be True or False, got {keep_ratios!r}; True keeps "
            "the ratios between parameter groups, False sets every group to lr."
        )
    chosen = optimizer_names(ctx, None if opt_name is None else [opt_name], "set_lr")
    if keep_ratios:
        for name in chosen:
            groups = ctx.optimizers[name].param_groups
            if groups and not float(groups[0]["lr"]) > 0:
                raise ConfigError(
                    f"set_lr: the first parameter group of {name!r} has lr="
                    f"{float(groups[0]['lr'])}, so no ratio to it can be kept; call "
                    "set_lr(lr) without keep_ratios to set every group to lr."
                )

    def apply() -> None:
        for name in chosen:
            set_group_lrs(ctx.optimizers[name].param_groups, value, keep_ratios)
        if len(chosen) == len(ctx.optimizers):
            ctx.opt_hparams = {**ctx.opt_hparams, "lr": value}

    return apply


def field_edit(ctx: Context, field: str, value: Any) -> Callable[[], None]:
    """Check an edit of a context field (see ``Run.edit``); return what applies it."""
    if field not in EDITABLE:
        raise ConfigError(f"{field!r} cannot be edited; editable fields: {', '.join(EDITABLE)}.")
    if field == "weight_decay":
        return weight_decay_edit(ctx, value)
    if field == "batch_size":
        size = check_batch_size(ctx, value)
        return lambda: setattr(engine_of(ctx), "rebatch", size)
    if field.endswith("_epochs") and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{field} must be an int, got {type(value).__name__} {value!r}.")
    try:
        checked = ctx.check_edit(field, value)
    except TraitError as exc:
        raise ConfigError(str(exc)) from None
    return lambda: setattr(ctx, field, checked)


def weight_decay_edit(ctx: Context, value: Any) -> Callable[[], None]:
    """Check an edit of the L2 weight decay; return what sets it in every parameter group
    of every optimizer."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0:
        raise ConfigError(
            f"weight_decay must be a finite number >= 0 (e.g. 1e-4; 0 turns it off), got "
            f"{type(value).__name__} {value!r}."
        )
    for name, opt in (ctx.optimizers or {}).items():
        if any("weight_decay" not in group for group in opt.param_groups):
            raise ConfigError(
                f"weight_decay: optimizer {name!r} ({type(opt).__name__}) has no weight_decay "
                "setting in its parameter groups, so it cannot be edited."
            )
    if not ctx.optimizers:
        raise ConfigError("weight_decay: this run has no optimizer yet.")
    decay = float(value)

    def apply() -> None:
        for opt in ctx.optimizers.values():
            for group in opt.param_groups:
                group["weight_decay"] = decay
        ctx.opt_hparams = {**ctx.opt_hparams, "weight_decay": decay}

    return apply


def set_group_lrs(groups: list[dict[str, Any]], value: float, keep_ratios: bool) -> None:
    """Every group's lr to ``value``, or (``keep_ratios``) scaled so the first gets ``value``."""
    first = float(groups[0]["lr"]) if groups else 0.0
    for group in groups:
        new = value * (float(group["lr"]) / first) if keep_ratios and first else value
        if isinstance(group["lr"], torch.Tensor):  # a tensor lr stays a tensor
            group["lr"].fill_(new)
        else:
            group["lr"] = new
