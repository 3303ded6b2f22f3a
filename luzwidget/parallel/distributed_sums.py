"""A metric's sums and counts as a flat list of floats, and back: what the ranks add up.

Under torch.distributed, :mod:`luzwidget.parallel.lockstep` packs every metric of a set at the end
of its pass, adds the lists of all ranks in one ``all_reduce`` and unpacks the totals, so
``compute()`` then gives the value over the whole data on every rank. The sum state of a
luzwidget metric is its :class:`~luzwidget.metrics.sums.DeviceSum` attributes, an int or
float ``count`` and a tensor ``counts``; :class:`~luzwidget.metrics.LossAverage` travels as
its weighted sum and count.
"""

from __future__ import annotations

from typing import Any

import torch

from luzwidget.metrics.base import LossAverage
from luzwidget.metrics.sums import DeviceSum

__all__ = ["pack", "unpack"]


def pack(metric: Any) -> list[float]:
    if isinstance(metric, LossAverage):
        total = metric._sum()
        weighted = 0.0 if total is None else float(total.item()) * metric.size
        return [weighted, float(metric.count)]
    out: list[float] = []
    for _, value in _sums(metric):
        if isinstance(value, DeviceSum):
            total = value.total()
            out.extend([] if total is None else total.double().flatten().tolist())
        elif isinstance(value, torch.Tensor):
            out.extend(value.double().flatten().tolist())
        else:
            out.append(float(value))
    return out


def unpack(metric: Any, values: list[float]) -> None:
    if isinstance(metric, LossAverage):
        weighted, count = values
        if count and metric.size:
            local = metric._sum()
            have = 0.0 if local is None else float(local.item())
            offset = torch.tensor(weighted / metric.size - have, dtype=torch.float64)
            metric.partial = offset if metric.partial is None else metric.partial + offset
            metric.count = int(count)
        return
    at = 0
    for name, value in _sums(metric):
        if isinstance(value, DeviceSum):
            total = value.total()
            if total is None:
                continue
            n = total.numel()
            new = torch.tensor(values[at : at + n], dtype=torch.float64).reshape(total.shape)
            value.parts, value.partial = [], new.to(total.dtype).to(total.device)
        elif isinstance(value, torch.Tensor):
            n = value.numel()
            new = torch.tensor(values[at : at + n], dtype=torch.float64).reshape(value.shape)
            value.copy_(new.to(value.dtype))
        else:
            n = 1
            setattr(
                metric,
                name,
                type(value)(round(values[at]) if isinstance(value, int) else values[at]),
            )
        at += n


def _sums(metric: Any) -> list[tuple[str, Any]]:
    """The sum state of a luzwidget metric: its DeviceSums, ``count`` and ``counts``.

    A torchmetrics metric synchronises itself in ``compute()``; any other metric is
    computed on this rank's shard only.
    """
    found: list[tuple[str, Any]] = []
    for name, value in sorted(vars(metric).items()):
        summed = isinstance(value, DeviceSum) or (
            name == "counts" and isinstance(value, torch.Tensor)
        )
        counted = name == "count" and isinstance(value, int | float) and not isinstance(value, bool)
        if summed or counted:
            found.append((name, value))
    return found
