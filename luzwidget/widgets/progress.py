"""The progress part (``parts/progress.js``): epoch and batch bars, rate and ETA, loss, metrics."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from luzwidget.core.data import loader_len
from luzwidget.core.states import RunState
from luzwidget.core.summaries import fmt_number

if TYPE_CHECKING:
    from luzwidget.control.run import Run
    from luzwidget.core.context import Context
    from luzwidget.widgets.feed import DashboardFeed
    from luzwidget.widgets.stream import DownsampledSeries

__all__ = ["Progress", "clock"]


def clock(seconds: float) -> str:
    """``"1:02:03"`` or ``"2:03"``: a duration as a clock shows it (``"?"`` if not finite:
    an estimate from a rate still near zero)."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Builds the ``progress`` part; remembers the batch rate between ticks (main thread)."""

    def __init__(self) -> None:
        self._rate = 0.0
        self._mark = (time.monotonic(), 0)  # (when, batches seen then)
        self._elapsed = 0.0
        self._was_running = False

    def part(
        self, run: Run, feed: DashboardFeed, series: Mapping[str, DownsampledSeries], state: str
    ) -> dict[str, Any]:
        """Where the run is in its epochs and batches, how fast it goes, its last values."""
        ctx = run.ctx
        n_train, n_valid = loader_len(ctx.train_data) or 0, loader_len(ctx.valid_data) or 0
        training = bool(ctx.training) or ctx.epoch == 0  # before epoch 1: training comes first
        n_batches = loader_len(ctx.data) if ctx.epoch else n_train or None
        it = ctx.iter if isinstance(ctx.iter, int) else 0
        per_epoch = n_train + n_valid
        within = min((it + (0 if training else n_train)) / per_epoch, 1.0) if per_epoch else 0
        epoch_frac = (max(ctx.epoch - 1, 0) + within) / ctx.max_epochs if ctx.max_epochs else 0
        count = feed.n_train + feed.n_valid
        left = (n_batches or 0) - it + (n_valid if ctx.training else 0)
        return {
            "epoch_frac": round(min(epoch_frac, 1.0), 4),
            "epoch": ctx.epoch,
            "max_epochs": ctx.max_epochs,
            "min_epochs": ctx.min_epochs,
            "iter": it,
            "n_batches": n_batches,
            "opt_steps": _opt_steps(ctx, it if training else None, n_train or None),
            "phase": "train" if training else "valid",
            "rate_text": self._timing(ctx, state, count, left, per_epoch),
            "loss_text": " · ".join(
                f"{name} {fmt_number(s.last)} (EMA {fmt_number(s.last_ema)})"
                for name, s in series.items()
            ),
            "metrics": _last_metrics(ctx),
        }

    def _timing(self, ctx: Context, state: str, count: int, left: int, per_epoch: int) -> str:
        """``"412 batches/s · epoch ETA 0:21 · fit ETA 2:10"`` (or the time trained)."""
        now = time.monotonic()
        t0, c0 = self._mark
        running = state == RunState.RUNNING
        if running and self._was_running and now > t0:
            inst = (count - c0) / (now - t0)
            self._rate = inst if self._rate == 0 else 0.6 * self._rate + 0.4 * inst
            self._elapsed += now - t0
        self._mark, self._was_running = (now, count), running
        if running and self._rate > 0:
            fit_left = left + max(ctx.max_epochs - ctx.epoch, 0) * per_epoch
            return (
                f"{fmt_number(round(self._rate, 1))} batches/s · "
                f"epoch ETA {clock(left / self._rate)} · fit ETA {clock(fit_left / self._rate)}"
            )
        return f"trained for {clock(self._elapsed)}" if self._elapsed else ""


def _opt_steps(ctx: Context, it: int | None, n_train: int | None) -> list[Any] | None:
    """``[steps taken this epoch, steps per epoch]`` with gradient accumulation, else None.

    ``it`` is the training batch (None in validation: the epoch's steps are all taken).
    """
    k = ctx.accumulate
    if k <= 1:
        return None
    total = None if n_train is None else math.ceil(n_train / k)
    if it is None:
        return [total, total]
    done = it // k + (1 if it == n_train and it % k else 0)
    return [done, total]


def _last_metrics(ctx: Context) -> list[list[Any]]:
    """``[[set, [[metric, text], ...]], ...]``: the last epoch's metrics of train and valid."""
    out = []
    for set_name in ("train", "valid"):
        _, last = ctx.history.last(set_name)
        if last:
            out.append([set_name, [[k, fmt_number(v)] for k, v in last.items()]])
    return out
