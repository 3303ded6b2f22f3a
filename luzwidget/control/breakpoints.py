"""Where a run pauses by itself: at events, and when a condition on the context holds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError

if TYPE_CHECKING:
    from luzwidget.control.features import Features, SentinelWatch, Watch
    from luzwidget.core.context import Context

__all__ = ["Breakpoints"]

Predicate = Callable[["Context"], Any]


class Breakpoints:
    """The breakpoints of a run: events, and conditions checked at chosen events.

    Examples
    --------
    >>> bp = Breakpoints()
    >>> bp.add("epoch_end")            # every on_epoch_end
    >>> bp.add(lambda ctx: ctx.iter == 50)   # checked after each loss
    >>> Event.on_epoch_end in bp
    True
    >>> bp.nonfinite_loss = True       # pause after an epoch whose loss became NaN or inf
    >>> run.breakpoints.nonfinite = True   # ... or any module output or gradient; names it
    """

    def __init__(
        self, on_change: Callable[[], None] | None = None, features: Features | None = None
    ) -> None:
        self._events: set[Event] = set()
        self._conditions: list[tuple[Predicate, frozenset[Event] | None]] = []
        self._nonfinite = False
        self._on_change = on_change
        self.features = features  # a run's: its insight feature watches for NaN/inf

    @property
    def watch(self) -> Watch | None:
        """The check behind :attr:`nonfinite`: the run's insight feature's (None without)."""
        insight = self.features.insight if self.features is not None else None
        return insight.watch if insight is not None else None

    # -- editing -----------------------------------------------------------------------
    def add(self, where: Event | str | Predicate, *, at: Any = None) -> None:
        """Pause at an event, or when ``where(ctx)`` is true.

        Parameters
        ----------
        where
            An :class:`Event` (or its name, with or without ``on_``), or a callable taking
            the context and returning something true to pause.
        at
            For a callable: the event(s) where it is checked; default after each loss
            (``on_train_batch_after_loss`` and ``on_valid_batch_after_loss``); ``"all"``
            checks it after every event.

        Raises
        ------
        ConfigError
            If ``where`` names no event (the message lists them), or ``at`` is given
            for an event breakpoint.
        """
        if callable(where) and not isinstance(where, str | Event):
            self._conditions.append((where, _events(at)))
        else:
            if at is not None:
                raise ConfigError(
                    "at= is only for conditions; an event breakpoint is its own place."
                )
            self._events.add(Event.parse(where, argument="breakpoint"))
        self._changed()

    def remove(self, where: Event | str | Predicate) -> None:
        """Remove a breakpoint added before; a missing one is an error naming what is set."""
        if callable(where) and not isinstance(where, str | Event):
            kept = [(p, at) for p, at in self._conditions if p is not where]
            if len(kept) == len(self._conditions):
                raise KeyError(f"no such condition breakpoint: {where!r}")
            self._conditions = kept
        else:
            event = Event.parse(where, argument="breakpoint")
            if event not in self._events:
                raise KeyError(f"no breakpoint at {event}; set: {sorted(self._events) or 'none'}")
            self._events.discard(event)
        self._changed()

    def clear(self) -> None:
        """Remove every breakpoint, the non-finite loss check included."""
        self._events.clear()
        self._conditions.clear()
        self._nonfinite = False
        watch = self.watch
        if watch is not None:
            watch.enabled = False
        self._changed()

    @property
    def nonfinite_loss(self) -> bool:
        """Pause once a loss was NaN or infinite (bool; default False, on in a dashboard).

        Checked from the epoch's loss average, which the Metrics callback syncs at
        ``on_train_end`` / ``on_valid_end`` anyway: no per-batch cost and no host sync on a
        GPU. The run pauses right after that event; ``run.reason`` names the epoch and the
        first batch whose loss was not finite. To stop at that very batch, and learn which
        module made it, use :attr:`nonfinite`.
        """
        return self._nonfinite

    @nonfinite_loss.setter
    def nonfinite_loss(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise ConfigError(f"nonfinite_loss must be True or False, got {value!r}.")
        self._nonfinite = value
        self._changed()

    # -- where a NaN came from (the run's insight feature) ---------------------------------
    @property
    def nonfinite(self) -> bool:
        """Pause at the first non-finite module output, loss or gradient (bool, default False).

        ``run.reason`` names where it came from, e.g. ``"non-finite output of net.2 (Linear)
        at on_train_batch_after_pred (epoch 1, batch 27)"``. Forward hooks are installed only
        while it is on; see :mod:`luzwidget.insight.nonfinite` for what it costs.
        """
        return self._watching()

    @nonfinite.setter
    def nonfinite(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise ConfigError(f"nonfinite must be True or False, got {value!r}.")
        watch = self.watch
        if watch is None:
            raise ConfigError(
                "nonfinite needs a run's breakpoints (run.breakpoints of a run made by "
                "setup(...).run() or fit(): its insight feature hooks the modules)."
            )
        watch.enabled = value
        self._changed()

    @property
    def sentinel(self) -> SentinelWatch | None:
        """The sentinel: checks for silent bugs while training, each a named breakpoint
        that pauses the run and names the culprit (a run's; None for breakpoints of no run).

        ``sentinel.checks`` says which are on; ``sentinel.enable("grad_explosion")`` and
        ``sentinel.disable("no_update")`` change them; ``sentinel.findings`` lists what
        was found. See :mod:`luzwidget.insight.sentinel` for each check and its cost.
        """
        insight = self.features.insight if self.features is not None else None
        return insight.sentinel if insight is not None else None

    def _watching(self) -> bool:
        watch = self.watch
        return watch is not None and watch.enabled

    @property
    def events(self) -> frozenset[Event]:
        """The events with a breakpoint."""
        return frozenset(self._events)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    # -- checking ----------------------------------------------------------------------
    def hit(self, event: Event, ctx: Context) -> str | None:
        """Why to pause after ``event``, or None to go on."""
        if event in self._events:
            return f"breakpoint at {event.value}"
        sentinel = self.sentinel
        if sentinel is not None and sentinel.pending is not None:
            found = sentinel.hit(event, ctx)
            if found is not None:
                return found
        watch = self.watch
        if watch is not None and watch.enabled:
            found = watch.hit(event, ctx)
            if found is not None:
                return found
        for predicate, at in self._conditions:
            if event.is_after_loss if at is None else event in at:
                try:
                    if predicate(ctx):
                        return f"condition {_name(predicate)} is true at {event.value}"
                except Exception as exc:
                    return f"condition {_name(predicate)} raised {type(exc).__name__}: {exc}"
        return None

    def __contains__(self, where: object) -> bool:
        if isinstance(where, Event | str):
            try:
                return Event.parse(where) in self._events
            except ValueError:
                return False
        return any(p is where for p, _ in self._conditions)

    def __iter__(self) -> Iterator[Event | Predicate]:
        yield from sorted(self._events)
        yield from (p for p, _ in self._conditions)

    def __len__(self) -> int:
        return (
            len(self._events) + len(self._conditions) + int(self._nonfinite) + int(self._watching())
        )

    def __bool__(self) -> bool:
        """True when the loop must stop at events to check them (``nonfinite_loss`` needs
        not: it is told by the Metrics callback)."""
        return bool(self._events or self._conditions or self._watching() or self._found())

    def _found(self) -> bool:
        """A sentinel check found something since the last event boundary."""
        sentinel = self.sentinel
        return sentinel is not None and sentinel.pending is not None

    def __repr__(self) -> str:
        parts = [e.value for e in sorted(self._events)]
        parts += [_name(p) for p, _ in self._conditions]
        if self._nonfinite:
            parts.append("nonfinite_loss")
        if self._watching():
            parts.append("nonfinite")
        return f"Breakpoints({', '.join(parts)})"


def _events(at: Any) -> frozenset[Event] | None:
    if at is None:
        return None
    if at == "all":
        return frozenset(Event)
    if isinstance(at, Event | str):
        return frozenset({Event.parse(at, argument="at")})
    if isinstance(at, Iterable):
        return frozenset(Event.parse(e, argument="at") for e in at)
    raise ConfigError(f"at= must be an event, a list of events or 'all'; got {at!r}.")


def _name(predicate: Predicate) -> str:
    return getattr(predicate, "__name__", None) or repr(predicate)
