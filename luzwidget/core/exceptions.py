"""Control-flow exceptions of the loop, and the errors luzwidget raises for user mistakes."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CallbackError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "EarlyStop",
    "EditError",
    "LuzwidgetError",
    "RunStateError",
    "StepError",
    "StopEpoch",
    "StopFit",
]


# -- control flow: raised by callbacks (or the loop) to skip part of the loop ----------------


class StopFit(Exception):  # noqa: N818  (a signal, not an error)
    """Skip the remaining epochs; ``on_fit_end`` still runs."""


class EarlyStop(StopFit):
    """Stop because the monitored metric stopped improving; fires ``on_early_stopping``."""


class StopEpoch(Exception):  # noqa: N818  (a signal, not an error)
    """Skip the rest of the current epoch; ``on_epoch_end`` still runs."""


# -- user errors -------------------------------------------------------------------------


class LuzwidgetError(Exception):
    """Base class of the errors luzwidget raises for a mistake it can explain."""


class ConfigError(LuzwidgetError, ValueError):
    """An argument to ``setup``/``fit``/... has the wrong type or value."""


class EditError(ConfigError):
    """A value typed into the dashboard was refused; the message says why."""


class DataError(LuzwidgetError, ValueError):
    """The data cannot be turned into batches the loop understands."""


class RunStateError(LuzwidgetError, RuntimeError):
    """The run cannot do that in its current state (e.g. ``retry()`` with no error)."""


class CheckpointError(LuzwidgetError, ValueError):
    """A checkpoint file is corrupt or does not match the model it is loaded into."""


class _WhereMixin:
    """Adds where in the loop an error happened: event, epoch and batch index."""

    event: str | None
    epoch: int | None
    batch: int | None

    def _where(self) -> str:
        parts = []
        if self.epoch:
            parts.append(f"epoch {self.epoch}")
        if self.batch:
            parts.append(f"batch {self.batch}")
        return ", ".join(parts)


class CallbackError(_WhereMixin, LuzwidgetError, RuntimeError):
    """A callback raised; names the callback class, the event, the epoch and the batch.

    The original exception is ``__cause__``. ``run`` is the paused :class:`~luzwidget.Run`
    when the error came out of a blocking ``fit()``, so it can still be retried.
    """

    def __init__(
        self,
        callback: Any,
        event: str,
        cause: BaseException,
        epoch: int = 0,
        batch: int = 0,
        note: str = "",
    ) -> None:
        self.callback = callback
        self.event = event
        self.cause = cause
        self.epoch = epoch
        self.batch = batch
        self.run: Any = None
        name = type(callback).__name__
        where = self._where()
        super().__init__(
            f"Callback {name}.{event} raised {type(cause).__name__}: {cause}"
            + (f" ({where})" if where else "")
            + (f"\n{note}" if note else "")
        )


class StepError(_WhereMixin, LuzwidgetError, RuntimeError):
    """The step (forward, loss, backward or optimizer step) raised; says where and why.

    The original exception is ``__cause__``; ``run`` as for :class:`CallbackError`.
    """

    def __init__(
        self,
        what: str,
        event: str,
        cause: BaseException,
        epoch: int = 0,
        batch: int = 0,
        detail: str = "",
    ) -> None:
        self.what = what
        self.event = event
        self.cause = cause
        self.epoch = epoch
        self.batch = batch
        self.run: Any = None
        where = self._where()
        super().__init__(
            f"{what} failed before {event}"
            + (f" ({where})" if where else "")
            + f": {type(cause).__name__}: {cause}"
            + (f"\n{detail}" if detail else "")
        )
