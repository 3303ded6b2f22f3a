"""What going backwards answers: where ``run.step_back()`` and ``run.find()`` took a run.

The travel feature produces them (:mod:`luzwidget.travel.stepback`,
:mod:`luzwidget.travel.find`); they are plain data, so that the run's side of the seam
(:mod:`luzwidget.control.run_features`) and the command table can name them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Found", "Landing"]


@dataclass(frozen=True)
class Landing:
    """How a step back got where it is.

    Attributes
    ----------
    base : str
        What was restored before replaying (``"the end of epoch 3"``, ``"epoch 4, batch
        17"`` for a resume point, ``"the start"``).
    replayed : int
        Training batches replayed from there.
    seconds : float
        How long it took.
    """

    base: str
    replayed: int
    seconds: float


@dataclass(frozen=True)
class Found:
    """Where ``run.find()`` took the run: paused at ``on_train_batch_begin`` of ``batch``.

    Attributes
    ----------
    condition : str
        What was looked for.
    batch : int
        The training batch, numbered in the fit (1 is the first batch of epoch 1).
    epoch, iter : int
        The same batch as ``ctx.epoch`` and ``ctx.iter`` show it.
    how : str
        ``"record"`` (straight there from the loss record or the metrics),
        ``"snapshots and replay"`` or ``"replay"`` (looked at batch by batch).
    replayed : int
        Training batches replayed in all (the search and the landing).
    seconds : float
        How long it took.
    value : float
        The loss, the spike's ratio to the median or the metric (NaN where none).
    detail : str
        What held (e.g. ``"non-finite gradient of net.0.weight"``).
    """

    condition: str
    batch: int
    epoch: int
    iter: int
    how: str
    replayed: int
    seconds: float
    value: float = math.nan
    detail: str = ""

    def __str__(self) -> str:
        what = f": {self.detail}" if self.detail else ""
        return (
            f"{self.condition} at epoch {self.epoch}, batch {self.iter} (batch {self.batch} of "
            f"the fit){what}; found from the {self.how}, {self.replayed} batches replayed in "
            f"{self.seconds:.2f} s"
        )
