"""The Callback base class (one no-op method per event), and what marks luzwidget's own
per-run callbacks and hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from luzwidget.core.events import Event

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["Callback", "is_run_bound", "run_bound"]


def _noop(event: Event) -> Callable[[Any, Context], None]:
    def method(self: Any, ctx: Context) -> None:
        return None

    method.__name__ = event.value
    method.__qualname__ = f"Callback.{event.value}"
    method.__doc__ = f"Called at ``{event.value}``; does nothing unless overridden."
    method._luzwidget_noop = True  # type: ignore[attr-defined]  # skipped by the dispatch table
    return method


class Callback:
    """Base class of callbacks.

    Override ``on_<event>(self, ctx)`` for the events you need (see :class:`Event`); only
    overridden methods are called, so unused events cost nothing. Callbacks observe the
    run and change it only through the context (``ctx.log_metric``, ``ctx.max_epochs``,
    ``ctx.buffers``, raising ``StopFit``...). They run under ``torch.no_grad()``; use
    ``with torch.enable_grad():`` inside a method that needs gradients.

    Attributes
    ----------
    weight : float
        Callbacks are called in increasing weight (stable); defaults come before yours.
    ctx : Context or None
        The context, once the callback is attached to a run.
    acts_on_step : bool
        True for a callback that changes the training step at its inner events (e.g.
        :class:`GradientClip` at ``on_train_batch_before_step``). A module's own
        ``step(ctx)`` reaches those events only through ``ctx.backward(loss)`` and
        ``ctx.step_opt(opt)``; one that goes around them is refused, naming this callback.

    Examples
    --------
    >>> import luzwidget as lw
    >>> class PrintLoss(lw.Callback):
    ...     def on_epoch_end(self, ctx):
    ...         print(ctx.epoch, ctx.get_metric("loss", "train"))
    """

    weight: float = 0
    ctx: Context | None = None
    acts_on_step: ClassVar[bool] = False
    run_bound: ClassVar[bool] = False
    """True for luzwidget's own callbacks that belong to one run and its views (automatic
    snapshots, a dashboard's feed, on-demand views): a branch does not copy them."""

    def set_ctx(self, ctx: Context) -> None:
        """Called when the callback is attached to a context."""
        self.ctx = ctx

    def state_dict(self) -> dict[str, Any]:
        """State to save in checkpoints (tensors, numbers, strings, lists, dicts)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_F = TypeVar("_F", bound=Callable[..., Any])


def run_bound(hook: _F) -> _F:
    """Mark a hook luzwidget installs for one run (a forward hook of the Layers view, of
    ``breakpoints.nonfinite``): a branch's copy of the model leaves it out."""
    hook.run_bound = True  # type: ignore[attr-defined]  # a plain attribute on the function
    return hook


def is_run_bound(obj: Any) -> bool:
    """Whether ``obj`` (a callback, or a hook) belongs to one run (see :func:`run_bound`)."""
    return bool(getattr(getattr(obj, "__func__", obj), "run_bound", False))


for _event in Event:
    setattr(Callback, _event.value, _noop(_event))
del _event
