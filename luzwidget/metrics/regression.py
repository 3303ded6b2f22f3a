"""Regression metrics: ``MAE``, ``MSE`` and ``RMSE``, averaged over every element of the epoch."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional

from luzwidget.metrics.base import DeviceSum, Metric

__all__ = ["MAE", "MSE", "RMSE"]

_NARROW = (torch.float16, torch.bfloat16)


def _match_shapes(
    pred: torch.Tensor, target: torch.Tensor, owner: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``pred`` and ``target`` with equal shapes; a trailing dimension of size 1 is dropped."""
    if pred.dim() == target.dim() + 1 and pred.shape[-1] == 1 and pred.shape[:-1] == target.shape:
        return pred.squeeze(-1), target
    if target.dim() == pred.dim() + 1 and target.shape[-1] == 1 and target.shape[:-1] == pred.shape:
        return pred, target.squeeze(-1)
    raise ValueError(
        f"{owner}: pred has shape {tuple(pred.shape)} but target has shape "
        f"{tuple(target.shape)}; they must be equal (one of them may have an extra trailing "
        "dimension of size 1). Reshape the model output or the target so they match."
    )


class _ElementwiseMean(Metric):
    """Mean over all elements of the epoch of ``loss(pred, target)``, summed on the device.

    Each batch's sum is taken in float32 at least (float16 overflows past 65504) and the
    epoch's in float64 (float32 on MPS). NaN before the first ``update``. ``name=`` sets
    the records name (default: the abbreviation, made unique if another metric has it).
    """

    _loss: Callable[..., torch.Tensor] = staticmethod(functional.mse_loss)

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.reset()

    def reset(self) -> None:
        self.total = DeviceSum(wide=True)
        self.count = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape:
            pred, target = _match_shapes(pred, target, type(self).__name__)
        pred = pred.detach()
        if pred.dtype in _NARROW:
            pred = pred.float()
        self.total.add(type(self)._loss(pred, target, reduction="sum"))
        self.count += target.numel()

    def _mean(self) -> float:
        total = self.total.total()
        if total is None or self.count == 0:
            return math.nan
        return total.item() / self.count


class MAE(_ElementwiseMean):
    """Mean absolute error over all elements of the epoch; logged as ``"mae"``
    (or under ``name=``).

    ``pred`` and ``target`` have the same shape, or differ by a trailing dimension of size 1.

    Examples
    --------
    >>> m = MAE()
    >>> m.update(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 2.0]))
    >>> m.compute()
    0.5
    """

    abbrev = "mae"
    _loss = staticmethod(functional.l1_loss)

    def compute(self) -> float:
        return self._mean()


class MSE(_ElementwiseMean):
    """Mean squared error over all elements of the epoch; logged as ``"mse"``
    (or under ``name=``).

    ``pred`` and ``target`` have the same shape, or differ by a trailing dimension of size 1.

    Examples
    --------
    >>> m = MSE()
    >>> m.update(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 2.0]))
    >>> m.compute()
    2.0
    """

    abbrev = "mse"

    def compute(self) -> float:
        return self._mean()


class RMSE(MSE):
    """Square root of the epoch's mean squared error; logged as ``"rmse"``
    (or under ``name=``).

    Examples
    --------
    >>> m = RMSE()
    >>> m.update(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 2.0]))
    >>> round(m.compute(), 4)
    1.4142
    """

    abbrev = "rmse"

    def compute(self) -> float:
        return math.sqrt(self._mean())
