"""The callback that feeds a dashboard from the training loop, at almost no cost per batch."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from luzwidget.core.callback import Callback

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["DashboardFeed"]

STREAM_MAXLEN = 100_000
"""Undrained per-batch losses kept if the publisher stalls (oldest dropped first)."""


class DashboardFeed(Callback):
    """Collects the per-batch loss for a dashboard, without a host sync.

    ``on_train_batch_end`` appends ``(batch number, ctx.loss)`` to a thread-safe deque: the
    loss stays a (detached) tensor; the publisher drains the deque on the main thread and
    converts everything with one ``torch.stack(...).tolist()``. When the loop runs on the
    main thread (a blocking ``fit()`` in a cell, so the kernel's event loop cannot tick),
    the feed calls the publisher itself, at most every ``interval`` seconds.

    Parameters
    ----------
    tick : callable
        The publisher's tick, called on the main thread only.
    wake : callable
        Called (from any thread) when the loop runs but the publisher sleeps.
    interval : float
        Seconds between ticks driven from the loop (blocking runs).
    direct : bool
        Whether to tick from the loop at all (False headless: tests call ``tick()``).
    """

    run_bound = True  # luzwidget's own, for this run only: a branch does not copy it

    weight = 1000  # after the defaults: the loss is there and metrics are updated

    def __init__(
        self,
        tick: Callable[[], Any],
        wake: Callable[[], None],
        interval: float = 0.1,
        direct: bool = True,
    ) -> None:
        self.losses: deque[tuple[int, Any]] = deque(maxlen=STREAM_MAXLEN)
        self.n_train = 0  # training batches seen (the stream's x)
        self.n_valid = 0
        self.sleeping = False  # set by the publisher when it stops ticking
        self.blocking = False  # True while the loop runs on the main thread
        self._tick = tick
        self._wake = wake
        self._interval = interval
        self._direct = direct
        self._main = threading.main_thread().ident
        self._next = 0.0

    def on_train_batch_end(self, ctx: Context) -> None:
        self.n_train += 1
        self.losses.append((self.n_train, ctx.loss))
        self._nudge()

    def on_valid_batch_end(self, ctx: Context) -> None:
        self.n_valid += 1
        self._nudge()

    def on_epoch_begin(self, ctx: Context) -> None:
        self._nudge()

    on_epoch_end = on_fit_begin = on_fit_end = on_train_begin = on_valid_begin = on_epoch_begin

    def _nudge(self) -> None:
        on_main = threading.get_ident() == self._main
        self.blocking = on_main  # a cell drives the loop: the kernel reads no message now
        if self._direct and on_main:
            now = time.monotonic()
            if now >= self._next:
                self._next = now + self._interval
                self._tick()
        elif self.sleeping:
            self.sleeping = False
            self._wake()

    def __repr__(self) -> str:
        return f"DashboardFeed(n_train={self.n_train})"
