"""Stop training when a monitored metric stops improving (luz's ``early_stopping``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from luzwidget.callbacks.monitor import Monitor
from luzwidget.core.callback import Callback
from luzwidget.core.exceptions import ConfigError, EarlyStop
from luzwidget.core.report import report

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["EarlyStopping"]


class EarlyStopping(Callback):
    """Stop once ``monitor`` has not improved for ``patience`` epochs in a row.

    As luz's documentation, Keras and Lightning: training stops at the end of the
    ``patience``-th consecutive epoch without improvement (``wait >= patience``). With a
    constant loss, ``patience=2`` trains 3 epochs and ``patience=1`` trains 2; with a
    ``baseline`` that is never beaten, ``patience=1`` stops after epoch 1. An epoch that
    improves is never stopped (luz #63), so ``patience=0`` acts as ``patience=1``: it stops
    at the first epoch that does not improve on the best so far. Stopping fires
    ``on_early_stopping``, then ``on_fit_end``; it never happens before ``min_epochs``
    (``fit(epochs=(min, max))``): a wait that reaches ``patience`` sooner stops there.

    Parameters
    ----------
    monitor
        ``"<set>_<metric>"``, split on the first underscore: ``"valid_binary_acc"`` is the
        metric ``binary_acc`` of the validation set.
    min_delta
        An improvement must beat the best by more than this.
    patience
        Consecutive epochs without improvement that stop training (int >= 0).
    mode
        ``"min"`` for losses, ``"max"`` for accuracies and the like.
    baseline
        A value to beat: until an epoch beats it, epochs count as not improving.

    Attributes
    ----------
    best : float
        The best value seen; ``best_epoch`` is when. ``wait`` counts epochs since.
    stopped_epoch : int
        The epoch that stopped training (0 if it did not).

    Examples
    --------
    >>> cb = EarlyStopping(monitor="valid_acc", mode="max", patience=2)
    """

    weight = 50  # after the loggers and checkpoints of the same epoch end

    def __init__(
        self,
        monitor: str = "valid_loss",
        min_delta: float = 0,
        patience: int = 0,
        mode: str = "min",
        baseline: float | None = None,
    ) -> None:
        self.monitor = Monitor(monitor, mode, min_delta, "EarlyStopping")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ConfigError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}.")
        if baseline is not None and (
            isinstance(baseline, bool) or not isinstance(baseline, int | float)
        ):
            raise ConfigError(
                f"EarlyStopping: baseline must be a number or None, got {baseline!r}."
            )
        self.patience = patience
        self.baseline = None if baseline is None else float(baseline)
        self._reset()

    def _reset(self) -> None:
        self.best = self.monitor.worst if self.baseline is None else self.baseline
        self.best_epoch = 0
        self.wait = 0
        self.stopped_epoch = 0

    def on_fit_begin(self, ctx: Context) -> None:
        self._reset()

    def on_epoch_end(self, ctx: Context) -> None:
        value = self.monitor.value(ctx)
        if self.monitor.improved(value, self.best):
            self.best, self.best_epoch, self.wait = value, ctx.epoch, 0
            return
        self.wait += 1
        if self.wait >= self.patience and ctx.epoch >= ctx.min_epochs:
            self.stopped_epoch = ctx.epoch
            raise EarlyStop(
                f"{self.monitor.name} did not improve for {self.wait} epoch(s); best "
                f"{self.best:.6g} at epoch {self.best_epoch}"
            )

    def on_early_stopping(self, ctx: Context) -> None:
        if ctx.verbose and self.stopped_epoch:
            report(
                f"Early stopping at epoch {self.stopped_epoch}: {self.monitor.name} did not "
                f"improve for {self.wait} epoch(s) (best {self.best:.6g} at epoch "
                f"{self.best_epoch})."
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.wait = int(state["wait"])
        self.stopped_epoch = int(state["stopped_epoch"])

    def __repr__(self) -> str:
        m = self.monitor
        return (
            f"EarlyStopping(monitor={m.name!r}, min_delta={m.min_delta}, "
            f"patience={self.patience}, mode={m.mode!r}, baseline={self.baseline})"
        )
