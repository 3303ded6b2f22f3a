"""Learning-rate schedulers as a callback (luz's ``lr_scheduler``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from luzwidget.callbacks.monitor import Monitor
from luzwidget.core.accumulate import optimizer_steps, steps_now
from luzwidget.core.callback import Callback
from luzwidget.core.context import optimizer_names
from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["LRScheduler"]

_EPOCH_LEVEL = (Event.on_epoch_end, Event.on_valid_end, Event.on_train_end, Event.on_epoch_begin)
_NOT_ALLOWED = (
    Event.on_fit_begin,
    Event.on_predict_begin,
    Event.on_predict_batch_begin,
    Event.on_predict_batch_end,
    Event.on_predict_end,
)


class LRScheduler(Callback):
    """Build a torch scheduler for each optimizer at ``on_fit_begin``; step it at ``call_on``.

    Parameters
    ----------
    scheduler_factory
        ``factory(optimizer, **kwargs)`` returning a scheduler, e.g.
        ``torch.optim.lr_scheduler.StepLR``.
    call_on
        The event at which ``scheduler.step()`` is called (default: each epoch's end;
        ``"on_train_batch_end"`` for per-batch schedules such as OneCycleLR). At a batch
        event it steps only when the optimizers did (``fit(..., accumulate=k)``: once per
        ``k`` batches), so a per-step schedule counts optimizer steps.
    opt_name
        Which optimizer(s) to schedule, by name: a name, a list of names, or None for
        every optimizer (each gets its own scheduler).
    monitor
        For schedulers whose ``step`` takes a metric (``ReduceLROnPlateau``): which one,
        as ``"<set>_<metric>"``. Default: the epoch's **mean** loss (luz passed the last
        batch's), on validation when there is one, else training; with several
        optimizers, each optimizer's own loss (``loss_<name>``). At a batch event the
        metric is the current batch's loss.
    **kwargs
        Passed to ``scheduler_factory``. A factory that takes ``total_steps`` (OneCycleLR)
        and is given neither it nor ``epochs``/``steps_per_epoch`` gets ``total_steps``:
        the fit's optimizer steps (``call_on`` a batch event) or epochs.

    Attributes
    ----------
    schedulers : dict
        The schedulers by optimizer name, once the fit began.

    Examples
    --------
    >>> from torch.optim.lr_scheduler import StepLR, ReduceLROnPlateau
    >>> cb = LRScheduler(StepLR, step_size=10, gamma=0.5)
    >>> cb = LRScheduler(ReduceLROnPlateau, patience=2)   # gets the mean valid loss
    """

    def __init__(
        self,
        scheduler_factory: Callable[..., Any],
        call_on: str | Event = "on_epoch_end",
        opt_name: str | Sequence[str] | None = None,
        *,
        monitor: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not callable(scheduler_factory):
            raise ConfigError(
                "LRScheduler: scheduler_factory must be callable(optimizer, **kwargs), e.g. "
                f"torch.optim.lr_scheduler.StepLR; got {scheduler_factory!r}."
            )
        event = Event.parse(call_on, argument="LRScheduler call_on")
        if event in _NOT_ALLOWED:
            raise ConfigError(
                f"LRScheduler: call_on={event.value!r} is not a training event; use e.g. "
                "'on_epoch_end' or 'on_train_batch_end'."
            )
        if isinstance(opt_name, str) or opt_name is None:
            self.opt_names = None if opt_name is None else [opt_name]
        else:
            self.opt_names = list(opt_name)
        self.factory = scheduler_factory
        self.call_on = event
        self.kwargs = kwargs
        self.monitor = None if monitor is None else Monitor(monitor, "min", 0, "LRScheduler")
        self.schedulers: dict[str, Any] = {}
        self._pending: dict[str, Any] | None = None
        setattr(self, event.value, self._step)  # the dispatch table picks this method up

    def on_fit_begin(self, ctx: Context) -> None:
        names = optimizer_names(ctx, self.opt_names, "LRScheduler")
        kwargs = {**self._total_steps(ctx), **self.kwargs}
        self.schedulers = {n: self.factory(ctx.optimizers[n], **kwargs) for n in names}
        if self._pending is not None:
            self.load_state_dict(self._pending)

    def _total_steps(self, ctx: Context) -> dict[str, int]:
        """``{"total_steps": n}`` for a factory that needs it and was not told (OneCycleLR)."""
        given = {"total_steps", "epochs", "steps_per_epoch"} & set(self.kwargs)
        if given or "total_steps" not in _parameters(self.factory):
            return {}
        epochs = ctx.max_epochs - ctx.epoch
        if self.call_on in _EPOCH_LEVEL:
            return {"total_steps": max(epochs, 1)}
        per_epoch = optimizer_steps(ctx)
        if per_epoch is None:
            raise ConfigError(
                f"LRScheduler({getattr(self.factory, '__name__', self.factory)}): its "
                "total_steps is the fit's optimizer steps, but the training data has no "
                "length to count them from; pass total_steps=... to LRScheduler."
            )
        return {"total_steps": max(epochs * per_epoch, 1)}

    def _step(self, ctx: Context) -> None:
        if self.call_on not in _EPOCH_LEVEL and not steps_now(ctx):
            return  # accumulation: the optimizers did not step at this batch
        for name, scheduler in self.schedulers.items():
            if _takes_metric(scheduler):
                scheduler.step(self._metric(ctx, name))
            else:
                scheduler.step()

    def _metric(self, ctx: Context, name: str) -> float:
        if self.call_on not in _EPOCH_LEVEL:
            loss = ctx.loss
            return float(loss[name] if isinstance(loss, dict) else loss)
        if self.monitor is not None:
            return self.monitor.value(ctx)
        metric = f"loss_{name}" if len(ctx.optimizers) > 1 else "loss"
        for set_ in ("valid", "train"):
            found = Monitor(f"{set_}_{metric}", "min", 0, "LRScheduler").find(ctx)
            if found is not None:
                return found
        raise ConfigError(
            f"LRScheduler: the scheduler of {name!r} needs a metric, but no loss was logged "
            f"by {self.call_on.value} of epoch {ctx.epoch}; use call_on='on_epoch_end'."
        )

    def state_dict(self) -> dict[str, Any]:
        return {name: s.state_dict() for name, s in self.schedulers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not self.schedulers:  # not built yet: applied at on_fit_begin
            self._pending = dict(state)
            return
        self._pending = None
        for name, scheduler in self.schedulers.items():
            if name in state:
                scheduler.load_state_dict(state[name])

    def __repr__(self) -> str:
        name = getattr(self.factory, "__name__", repr(self.factory))
        return f"LRScheduler({name}, call_on={self.call_on.value!r}, opt_name={self.opt_names})"


def _parameters(factory: Any) -> set[str]:
    try:
        return set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return set()


def _takes_metric(scheduler: Any) -> bool:
    """True if ``scheduler.step`` needs an argument (e.g. ReduceLROnPlateau's metric)."""
    try:
        params = list(inspect.signature(scheduler.step).parameters.values())
    except (TypeError, ValueError):
        return False
    return (
        bool(params)
        and params[0].default is inspect.Parameter.empty
        and params[0].kind
        in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    )
