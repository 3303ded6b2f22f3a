"""Mixup augmentation (luz's ``mixup`` callback and ``nn_mixup_loss``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import nn

from luzwidget.core.callback import Callback
from luzwidget.core.exceptions import ConfigError

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["Mixup", "MixupLoss", "MixupTarget"]


class MixupTarget(NamedTuple):
    """The target of a mixed batch: each sample's own target, its partner's, and the
    weight of its own (>= 0.5) in the mix."""

    target: Any
    other: Any
    weight: torch.Tensor


class MixupLoss(nn.Module):
    """A loss for mixed batches: ``weight * loss(pred, target) + (1 - weight) * loss(pred,
    other)`` per sample, then the mean. Plain targets (validation) go to ``loss`` as is,
    and with ``reduction="none"`` its per-sample losses are averaged, as luz does.

    Parameters
    ----------
    loss
        A loss module with a ``reduction`` attribute, e.g. ``nn.CrossEntropyLoss()`` or
        ``nn.CrossEntropyLoss(reduction="none")`` (how luz documents ``nn_mixup_loss``).
    """

    def __init__(self, loss: Any) -> None:
        super().__init__()
        if not hasattr(loss, "reduction"):
            raise ConfigError(
                f"MixupLoss needs a loss with a 'reduction' attribute (e.g. nn.CrossEntropyLoss()) "
                f"to get one loss per sample; got {type(loss).__name__}."
            )
        self.loss = loss

    def forward(self, pred: Any, target: Any) -> torch.Tensor:
        if not isinstance(target, MixupTarget):
            loss: torch.Tensor = self.loss(pred, target)
            return loss.mean() if self.loss.reduction == "none" else loss
        reduction = self.loss.reduction
        self.loss.reduction = "none"
        try:
            own = self.loss(pred, target.target)
            other = self.loss(pred, target.other)
        finally:
            self.loss.reduction = reduction
        n = len(target.weight)
        own, other = own.reshape(n, -1).mean(1), other.reshape(n, -1).mean(1)
        return torch.lerp(other, own, target.weight.to(own.dtype)).mean()


class Mixup(Callback):
    """Mix each training batch with a shuffled copy of itself (mixup, Zhang et al. 2018).

    Per sample, ``w = max(l, 1 - l)`` with ``l ~ Beta(alpha, alpha)``; the input becomes
    ``w * x + (1 - w) * x[perm]`` and the target a :class:`MixupTarget` that
    :class:`MixupLoss` understands. Each sample keeps the larger share, so after the loss
    the target is put back: training metrics compare predictions with the original
    (dominant) targets.

    Parameters
    ----------
    alpha
        The Beta distribution's parameter; small values mix little.
    run_valid
        Also mix validation batches.
    auto_loss
        Wrap the loss in :class:`MixupLoss` for the fit (else pass
        ``loss=MixupLoss(...)`` to ``setup()`` yourself).
    """

    weight = -85  # before Metrics (-80): it restores the target before metrics update

    def __init__(
        self, alpha: float = 0.4, run_valid: bool = False, auto_loss: bool = False
    ) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or alpha <= 0:
            raise ConfigError(f"Mixup: alpha must be a number > 0, got {alpha!r}.")
        self.alpha = float(alpha)
        self.run_valid = bool(run_valid)
        self.auto_loss = bool(auto_loss)
        self._loss_fn: Any = None
        self._target: Any = None

    def on_fit_begin(self, ctx: Context) -> None:
        if isinstance(ctx.loss_fn, MixupLoss) or ctx.step is not None:
            return
        if not self.auto_loss:
            raise ConfigError(
                "Mixup replaces each target with a MixupTarget, which the loss must understand: "
                "use setup(..., loss=MixupLoss(nn.CrossEntropyLoss())) or Mixup(auto_loss=True)."
            )
        self._loss_fn = ctx.loss_fn
        ctx.loss_fn = MixupLoss(ctx.loss_fn)

    def on_train_batch_begin(self, ctx: Context) -> None:
        self._mix(ctx)

    def on_valid_batch_begin(self, ctx: Context) -> None:
        if self.run_valid:
            self._mix(ctx)

    def on_train_batch_end(self, ctx: Context) -> None:
        if self._target is not None:
            ctx.target, self._target = self._target, None

    on_valid_batch_end = on_train_batch_end

    def on_fit_end(self, ctx: Context) -> None:
        if self._loss_fn is not None:
            ctx.loss_fn, self._loss_fn = self._loss_fn, None

    def _mix(self, ctx: Context) -> None:
        x, y = ctx.input, ctx.target
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or y is None:
            raise ConfigError(
                "Mixup mixes a floating-point input tensor and needs a target; the batch has "
                f"input {type(x).__name__} {getattr(x, 'dtype', '')} and target "
                f"{type(y).__name__}."
            )
        n = x.shape[0]
        beta = torch.distributions.Beta(torch.tensor(self.alpha), torch.tensor(self.alpha))
        lam = beta.sample((n,))
        weight = torch.maximum(lam, 1 - lam).to(x.device)
        perm = torch.randperm(n).to(x.device)
        shape = (n,) + (1,) * (x.ndim - 1)
        ctx.input = torch.lerp(x[perm], x, weight.to(x.dtype).view(shape))
        self._target = y
        ctx.target = MixupTarget(y, y[perm], weight)

    def __repr__(self) -> str:
        return f"Mixup(alpha={self.alpha}, run_valid={self.run_valid}, auto_loss={self.auto_loss})"
