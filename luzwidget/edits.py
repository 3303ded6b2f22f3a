"""Edits of a run: learning rate, epochs, verbosity, loss, callbacks; checked, then queued.

Each edit is validated at once in the caller's thread (a refused edit raises and changes
nothing) and applied by the thread driving the loop at its next event boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from luzwidget.context import Context, check_callbacks, finite_positive, optimizer_names
from luzwidget.exceptions import ConfigError

__all__ = ["Edits"]


class Edits:
    """The editing methods of :class:`~luzwidget.Run` (a mixin: needs ``ctx`` and ``_submit``)."""

    ctx: Context
    _submit: Callable[[Callable[[], None]], None]

    def set_lr(self, lr: Any, opt_name: str | None = None) -> None:
        """Set the learning rate of one optimizer (or all), at the next event boundary.

        Raises
        ------
        ConfigError
            If ``lr`` is not a finite positive number or ``opt_name`` is unknown.
        """
        try:
            value = finite_positive(lr, "lr")
        except Exception as exc:
            raise ConfigError(str(exc)) from None
        chosen = optimizer_names(self.ctx, None if opt_name is None else [opt_name], "set_lr")

        def apply() -> None:
            for name in chosen:
                for group in self.ctx.optimizers[name].param_groups:
                    group["lr"] = value
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
