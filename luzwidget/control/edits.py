"""The run's edits, checked now and applied later: each check returns the edit to apply.

:meth:`~luzwidget.control.run.Run.set_lr` and :meth:`~luzwidget.control.run.Run.edit`
check their arguments in the caller's thread (a refused edit raises and changes nothing)
and hand the returned callable to the driver, which applies it at the next event boundary
(or at once, when nothing drives the run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from traitlets import TraitError

from luzwidget.core.context import Context, finite_positive, optimizer_names
from luzwidget.core.exceptions import ConfigError

__all__ = ["EDITABLE", "field_edit", "lr_edit"]

EDITABLE = ("max_epochs", "min_epochs", "verbose", "loss_fn")
"""The context fields ``run.edit`` changes."""


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
    if field.endswith("_epochs") and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{field} must be an int, got {type(value).__name__} {value!r}.")
    try:
        checked = ctx.check_edit(field, value)
    except TraitError as exc:
        raise ConfigError(str(exc)) from None
    return lambda: setattr(ctx, field, checked)


def set_group_lrs(groups: list[dict[str, Any]], value: float, keep_ratios: bool) -> None:
    """Every group's lr to ``value``, or (``keep_ratios``) scaled so the first gets ``value``."""
    first = float(groups[0]["lr"]) if groups else 0.0
    for group in groups:
        new = value * (float(group["lr"]) / first) if keep_ratios and first else value
        if isinstance(group["lr"], torch.Tensor):  # a tensor lr stays a tensor
            group["lr"].fill_(new)
        else:
            group["lr"] = new
