"""Skipping the rest of a batch a run is paused inside (``run.skip()`` at a mid-batch pause)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from luzwidget.core.callback import Callback
from luzwidget.core.engine import SkipBatch

if TYPE_CHECKING:
    from luzwidget.control.run import Run

__all__ = ["SkipRestOfBatch"]


class SkipRestOfBatch(Callback):
    """Abandons the batch the run is paused in, at the next event (once, then leaves).

    The gradients are dropped at once (``p.grad = None``: an optimizer step that still
    comes skips every parameter), and the next event of the batch raises the loop's
    ``SkipBatch``: the rest of the batch does not run, its metrics are not updated, and the
    batch is listed in ``ctx``'s skipped batches, as after ``run.skip()`` on an error.
    """

    run_bound = True  # luzwidget's own, for this run only: a branch does not copy it
    weight = -1e9  # before every other callback of that event

    def __init__(self, run: Run) -> None:
        self.run = run
        for p in run.ctx.model.parameters():
            p.grad = None

    def _skip(self, ctx: Any) -> None:
        self.run.remove_callback(self)
        raise SkipBatch

    on_train_batch_after_pred = on_train_batch_after_loss = _skip
    on_train_batch_before_backward = on_train_batch_before_step = _skip
    on_train_batch_after_step = on_train_batch_end = _skip
    on_valid_batch_after_pred = on_valid_batch_after_loss = on_valid_batch_end = _skip
