"""distributed_sums.py: how a metric's sums and counts travel in the all_reduce.

The launches with several processes are in tests/parallel/test_distributed.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from luzwidget.metrics import MAE, Accuracy, BinaryAUROC
from luzwidget.metrics.base import LossAverage
from luzwidget.parallel.distributed_sums import pack as _pack
from luzwidget.parallel.distributed_sums import unpack as _unpack


def _two_shards_summed(make: Any, feed: Any) -> tuple[Any, Any]:
    """(rank 0's metric after the reduction, one metric fed everything)."""
    halves = [make(), make()]
    whole = make()
    for rank, metric in enumerate(halves):
        feed(metric, rank)
        feed(whole, rank)
    summed = [a + b for a, b in zip(_pack(halves[0]), _pack(halves[1]), strict=True)]
    _unpack(halves[0], summed)
    return halves[0], whole


def test_a_loss_average_reduced_over_two_shards_is_the_average_over_both() -> None:
    losses = {0: [1.0, 2.0, 4.0], 1: [3.0, 5.0, 0.5]}

    def feed(m: LossAverage, rank: int) -> None:
        for k, loss in enumerate(losses[rank]):
            m.update_loss(torch.tensor(loss), 4 if k < 2 else 2)  # a short last batch

    reduced, whole = _two_shards_summed(LossAverage, feed)
    assert reduced.compute() == pytest.approx(whole.compute(), rel=1e-12)
    assert reduced.count == whole.count == 20


@pytest.mark.parametrize("make", [MAE, Accuracy, BinaryAUROC])
def test_a_luzwidget_metric_reduced_over_two_shards_equals_one_on_all_data(make: Any) -> None:
    g = torch.Generator().manual_seed(0)
    data = {r: (torch.rand(16, 1, generator=g), torch.rand(16, 1, generator=g)) for r in (0, 1)}

    def feed(m: Any, rank: int) -> None:
        pred, target = data[rank]
        if make is Accuracy:
            m.update(torch.cat([pred, 1 - pred], 1), (target > 0.5).long().squeeze(1))
        elif make is BinaryAUROC:
            m.update(pred.squeeze(1), (target > 0.5).float().squeeze(1))
        else:
            m.update(pred, target)

    reduced, whole = _two_shards_summed(make, feed)
    assert reduced.compute() == pytest.approx(whole.compute(), rel=1e-9)
