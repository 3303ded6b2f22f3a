"""The recorders behind ``run.layers()`` and ``run.activations()``: armed only while someone
looks (see :mod:`luzwidget.insight.layers` for when), each kept by the run's insight feature
(:func:`tracker`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from torch import nn

from luzwidget.core.states import RunState
from luzwidget.insight.attached import OnDemand, insight_of
from luzwidget.insight.hooks import Hook, ModuleHooks
from luzwidget.insight.stats import first_tensor, stats

if TYPE_CHECKING:
    pass

__all__ = ["ActivationTracker", "Armed", "tracker"]


class Armed(OnDemand):
    """An :class:`OnDemand` callback armed by subscribers, or once for the next drive."""

    def __init__(self, run: Any) -> None:
        super().__init__(run)
        self.subscribers = 0
        self._once = False
        self._drove = False
        self._listening = False

    def subscribe(self) -> None:
        """Keep recording until the matching :meth:`unsubscribe` (counted)."""
        self.subscribers += 1
        self._update()

    def unsubscribe(self) -> None:
        """Undo one :meth:`subscribe`; the last one disarms unless a call armed it."""
        self.subscribers = max(0, self.subscribers - 1)
        self._update()

    def arm_once(self) -> None:
        """Record during the next stretch of driving, until the run pauses or ends again."""
        self._once = True
        self._drove = self.run.state == RunState.RUNNING
        if not self._listening:
            self.run.add_listener(self._state_changed)
            self._listening = True
        self._update()

    def _state_changed(self, run: Any) -> None:
        if run.state == RunState.RUNNING:
            self._drove = True
        elif self._drove:
            self._once = self._drove = False
            run.remove_listener(self._state_changed)
            self._listening = False
            self._update()

    def _update(self) -> None:
        self.want(self.subscribers > 0 or self._once)


class ActivationTracker(Armed):
    """Keeps, while armed, the statistics of each module's last output (forward hooks).

    Attributes
    ----------
    stats : dict
        ``module name -> (module type, shape, mean, std, non-finite count)`` of the last
        forward pass recorded; the numbers are 0-d tensors until read.
    """

    def __init__(self, run: Any) -> None:
        super().__init__(run)
        self.stats: dict[str, tuple[str, tuple[int, ...], Any, Any, Any]] = {}
        self.hooks = ModuleHooks()

    def joined(self) -> None:
        self.hooks.install(self.run.ctx.model, self._hook)

    def left(self) -> None:
        self.hooks.remove()

    def _hook(self, name: str) -> Hook:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            tensor = first_tensor(output)
            if tensor is not None:
                self.stats[name] = (type(module).__name__, tuple(tensor.shape), *stats(tensor))

        return hook


_A = TypeVar("_A", bound=Armed)


def tracker(run: Any, kind: type[_A]) -> _A:
    """The run's view of ``kind`` (made on first use, kept by its insight feature)."""
    views = insight_of(run).views
    found = views.get(kind)
    if found is None:
        found = views[kind] = kind(run)
    return found  # type: ignore[return-value]  # views[kind] is a kind
