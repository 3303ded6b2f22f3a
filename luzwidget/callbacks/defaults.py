"""The callbacks every fit uses: profile, train_valid, metrics, interrupt."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import torch

from luzwidget.core.batches import count, prediction
from luzwidget.core.callback import Callback
from luzwidget.core.engine import engine_of
from luzwidget.core.report import report
from luzwidget.core.values import as_scalar
from luzwidget.metrics.base import LossAverage, MetricSet, abbrev_of, fresh
from luzwidget.metrics.names import MetricError

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["Interrupt", "Metrics", "Profile", "TrainValid"]


class Profile(Callback):
    """Time the fit, each epoch, and each training and validation loop.

    Logs seconds to ``records["profile"]["fit" | "epoch" | "train" | "valid"]`` (one entry
    per fit for "fit", per epoch for the others).
    """

    weight = -100

    def __init__(self) -> None:
        self._start: dict[str, float] = {}

    def _begin(self, what: str) -> None:
        self._start[what] = time.perf_counter()

    def _end(self, ctx: Context, what: str) -> None:
        start = self._start.pop(what, None)
        if start is not None:
            ctx.log("profile", what, time.perf_counter() - start)

    def on_fit_begin(self, ctx: Context) -> None:
        self._begin("fit")

    def on_epoch_begin(self, ctx: Context) -> None:
        self._begin("epoch")

    def on_train_begin(self, ctx: Context) -> None:
        self._begin("train")

    def on_train_end(self, ctx: Context) -> None:
        self._end(ctx, "train")

    def on_valid_begin(self, ctx: Context) -> None:
        self._begin("valid")

    def on_valid_end(self, ctx: Context) -> None:
        self._end(ctx, "valid")

    def on_epoch_end(self, ctx: Context) -> None:
        self._end(ctx, "epoch")

    def on_fit_end(self, ctx: Context) -> None:
        self._end(ctx, "fit")


class TrainValid(Callback):
    """Put the model in training mode for training and eval mode for validation."""

    weight = -90

    def on_train_begin(self, ctx: Context) -> None:
        ctx.model.train()
        ctx.training = True

    def on_valid_begin(self, ctx: Context) -> None:
        ctx.model.eval()
        ctx.training = False


class Metrics(Callback):
    """Keep a fresh copy of each metric per mode and epoch; update per batch; log per epoch.

    The loss average comes first and is logged as ``"loss"`` (with several optimizers,
    ``"loss_<name>"`` for each and ``"loss"`` for their sum). Every other metric is logged
    under its own name (see :meth:`MetricSet.named`): two with one abbreviation are
    ``"acc"`` and ``"acc_2"``. A metric that raises in ``update`` or ``compute`` raises a
    :class:`~luzwidget.metrics.MetricError` naming its class and abbreviation, with the
    original exception as ``__cause__``.
    """

    weight = -80

    def __init__(self, metrics: MetricSet | None = None) -> None:
        self.metric_set = metrics or MetricSet()
        self._losses: dict[Any, LossAverage] = {}
        self._others: list[Any] = []
        self._names: list[str] = []
        self._values: dict[str, Any] = {}  # the engine's trait storage, from _begin on

    def __getstate__(self) -> dict[str, Any]:
        # A copy (a branch) rebinds to its own run at the next _begin, never to this one's.
        return {**self.__dict__, "_values": {}}

    def _begin(self, ctx: Context, mode: str) -> None:
        names = list(ctx.optimizers) if len(ctx.optimizers) > 1 else [None]
        self._losses = {nm: LossAverage() for nm in names}
        device = ctx.device
        losses = ["loss", *(f"loss_{nm}" for nm in names if nm is not None)]
        named = self.metric_set.named(mode, reserved=losses)
        self._names, self._others = [name for name, _ in named], []
        # _update runs every batch: read the loop's values through the engine, which owns the
        # trait storage (three trait descriptor reads cost more than the rest of _update).
        self._values = engine_of(ctx).values
        for _, proto in named:
            metric = fresh(proto)
            to = getattr(metric, "to", None)
            if device is not None and callable(to):
                metric = to(device) or metric
            self._others.append(metric)
        ctx.metrics = {**ctx.metrics, mode: [*self._losses.values(), *self._others]}

    def _update(self, ctx: Context) -> None:
        values = self._values
        loss, pred, target = values["loss"], values["pred"], values["target"]
        # The batch's samples: the target's leading dimension (the input's without one),
        # never len() of a dict or tuple (see luzwidget.core.batches.count).
        if type(target) is torch.Tensor and target.ndim:
            n = target.shape[0]  # the common case, inlined
        else:
            n = count(target, values["input"])
        losses = self._losses
        if type(loss) is dict:
            for nm, value in loss.items():
                (losses.get(nm) or self._meter(nm)).update_loss(value, n)
        elif loss is not None:
            (losses.get(None) or self._meter(None)).update_loss(loss, n)
        if not self._others:
            return
        if type(pred) is not torch.Tensor:
            pred = prediction(pred)  # a ModelOutput's logits
        try:
            for metric in self._others:
                if pred is None:
                    raise ValueError(
                        "ctx.pred is None: the module's step() set only ctx.loss. A metric "
                        "compares predictions with targets; set ctx.pred in step(), or "
                        "pass no metrics."
                    )
                metric.update(pred, target)
        except Exception as exc:
            raise self._error(metric, "update", exc) from exc

    def _meter(self, name: str | None) -> LossAverage:
        """A loss average for a loss the step set under a name no optimizer has (a custom
        step's ``ctx.loss = {"gen": ..., "disc": ...}``, or one loss for several)."""
        meter = self._losses[name] = LossAverage()
        return meter

    def _log(self, ctx: Context, mode: str) -> None:
        # The losses the step set (a custom step may set other names than the optimizers').
        meters = {nm: m for nm, m in self._losses.items() if m.count} or self._losses
        self._losses = meters
        if list(meters) == [None]:
            values = {"loss": meters[None].compute()}
            ctx.log_metric("loss", values["loss"])
        else:
            values = {f"loss_{nm}": m.compute() for nm, m in meters.items()}
            ctx.log_metric("loss", sum(values.values()))
            for name, value in values.items():
                ctx.log_metric(name, value)
        self._check_finite(ctx, mode, values)
        for name, metric in zip(self._names, self._others, strict=True):
            try:
                value = as_scalar(metric.compute())
            except Exception as exc:
                raise self._error(metric, "compute", exc, name) from exc
            if hasattr(value, "tolist"):
                value = value.tolist()
            ctx.log_metric(name, value)

    def _check_finite(self, ctx: Context, mode: str, values: dict[str, float]) -> None:
        """A NaN or inf epoch loss (already a float: no extra sync) is told to the engine,
        with the first batch whose loss was not finite (found on the device, in this case
        only)."""
        bad = [(name, v) for name, v in values.items() if not math.isfinite(v)]
        if not bad:
            return
        name, value = bad[0]
        meter = self._losses[None] if name == "loss" else self._losses[name[5:]]
        position = meter.first_nonfinite()
        if position is not None:
            engine_of(ctx).nonfinite_loss(mode, position, value)

    def _error(
        self, metric: Any, method: str, exc: Exception, name: str | None = None
    ) -> MetricError:
        """A MetricError naming ``metric``'s class, abbreviation and records name."""
        if name is None:
            name = next(n for n, m in zip(self._names, self._others, strict=True) if m is metric)
        return MetricError(metric, abbrev_of(metric), name, method, exc)

    def on_train_begin(self, ctx: Context) -> None:
        self._begin(ctx, "train")

    def on_train_batch_end(self, ctx: Context) -> None:
        self._update(ctx)

    def on_train_end(self, ctx: Context) -> None:
        self._log(ctx, "train")

    def on_valid_begin(self, ctx: Context) -> None:
        self._begin(ctx, "valid")

    def on_valid_batch_end(self, ctx: Context) -> None:
        self._update(ctx)

    def on_valid_end(self, ctx: Context) -> None:
        self._log(ctx, "valid")


class Interrupt(Callback):
    """Say where training stopped when the user interrupts a blocking ``fit()`` (Ctrl-C).

    The run itself catches the interrupt: it pauses at the next event boundary, then
    ``fit()`` fires ``on_interrupt`` and ``on_fit_end`` and returns what was trained so
    far; ``fitted.run.resume()`` continues exactly where it stopped.
    """

    weight = -70

    def on_interrupt(self, ctx: Context) -> None:
        report(
            f"Training interrupted at epoch {ctx.epoch}, batch {ctx.iter}; returning the "
            "model trained so far. fitted.run.resume() continues where it stopped."
        )
