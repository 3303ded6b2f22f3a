"""Edits of a run: learning rate, epochs, verbosity, loss, callbacks; checked, then queued.

Each edit is validated at once in the caller's thread (a refused edit raises and changes
nothing) and applied by the thread driving the loop at its next event boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from luzwidget.context import Context, check_callbacks, finite_positive, optimizer_names
from luzwidget.exceptions import ConfigError

__all__ = ["Edits"]


class Edits:
    """The editing methods of :class:`~luzwidget.Run` (a mixin: needs ``ctx`` and ``_submit``)."""

    ctx: Context
    _submit: Callable[[Callable[[], None]], None]

    def set_lr(self, lr: Any, opt_name: str | None = None, keep_ratios: bool = False) -> None:
        """Set the learning rate of one optimizer (or all), at the next event boundary.

        Parameters
        ----------
        lr
            The new learning rate, a finite number > 0.
        opt_name
            The optimizer to change, by name; None changes every optimizer.
        keep_ratios
            What happens to an optimizer with several parameter groups. False (the
            default, as torch users and luz expect of "set the lr"): every group gets
            ``lr``. True: every group is scaled by the same factor, so that the first
            group gets ``lr`` and the ratios between groups stay (e.g. a backbone at a
            tenth of the head's lr stays at a tenth). With one group both are the same.

        Raises
        ------
        ConfigError
            If ``lr`` is not a finite positive number, ``opt_name`` is unknown or
            ``keep_ratios`` is not a bool (or True while a first group's lr is 0).
        """
        try:
            value = finite_positive(lr, "lr")
        except Exception as exc:
            raise ConfigError(str(exc)) from None
        if not isinstance(keep_ratios, bool):
            raise ConfigError(
                f"set_lr: keep_ratios must be True or False, got {keep_ratios!r}; True keeps "
                "the ratios between parameter groups, False sets every group to lr."
            )
        chosen = optimizer_names(self.ctx, None if opt_name is None else [opt_name], "set_lr")
        if keep_ratios:
            for name in chosen:
                groups = self.ctx.optimizers[name].param_groups
                if groups and not float(groups[0]["lr"]) > 0:
                    raise ConfigError(
                        f"set_lr: the first parameter group of {name!r} has lr="
                        f"{float(groups[0]['lr'])}, so no ratio to it can be kept; call "
                        "set_lr(lr) without keep_ratios to set every group to lr."
                    )

        def apply() -> None:
            for name in chosen:
                groups = self.ctx.optimizers[name].param_groups
                first = float(groups[0]["lr"]) if groups else 0.0
                for group in groups:
                    # value * (lr / first): the first group gets exactly value
                    new = value * (float(group["lr"]) / first) if keep_ratios and first else value
                    if isinstance(group["lr"], torch.Tensor):  # a tensor lr stays a tensor
                        group["lr"].fill_(new)
                    else:
                        group["lr"] = new
            if len(chosen) == len(self.ctx.optimizers):
                self.ctx.opt_hparams = {**self.ctx.opt_hparams, "lr": value}

        self._submit(apply)

    def edit(self, field: str, value: Any) -> None:
        """Change a context field (``max_epochs``, ``min_epochs``, ``verbose``, ``loss_fn``).

        The value is checked now and applied at the next event boundary.

        Raises
        ------
        ConfigError
            If the field cannot be edited or the value is refused (nothing changes).
        """
        editable = ("max_epochs", "min_epochs", "verbose", "loss_fn")
        if field not in editable:
            raise ConfigError(
                f"{field!r} cannot be edited; editable fields: {', '.join(editable)}."
            )
        if field.endswith("_epochs") and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{field} must be an int, got {type(value).__name__} {value!r}.")
        try:
            checked = self.ctx.check_edit(field, value)
        except Exception as exc:
            raise ConfigError(str(exc)) from None
        self._submit(lambda: setattr(self.ctx, field, checked))

    def add_callback(self, callback: Any) -> None:
        """Add a callback (checked now, active from the next event boundary)."""
        try:
            check_callbacks([callback])
        except Exception as exc:
            raise ConfigError(str(exc)) from None
        self._submit(lambda: setattr(self.ctx, "callbacks", [*self.ctx.callbacks, callback]))

    def remove_callback(self, callback: Any) -> None:
        """Remove a callback instance, or every callback of a class."""

        def match(cb: Any) -> bool:
            return cb is callback or (isinstance(callback, type) and isinstance(cb, callback))

        if not any(match(cb) for cb in self.ctx.callbacks):
            names = ", ".join(type(cb).__name__ for cb in self.ctx.callbacks)
            raise ConfigError(f"{callback!r} is not a callback of this run; it has: {names}.")
        self._submit(
            lambda: setattr(
                self.ctx, "callbacks", [cb for cb in self.ctx.callbacks if not match(cb)]
            )
        )
