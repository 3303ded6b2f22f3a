"""Callbacks as the context calls them: checked when added, then a table of bound methods.

The table maps every event to the tuple of methods to call, in order; only methods a
callback really overrides are in it, so an event nobody listens to costs one lookup.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError

__all__ = ["build_dispatch_table", "check_callbacks"]

_EVENT_NAMES = frozenset(Event.__members__)


def _overrides(cb: Any, name: str) -> bool:
    """True if ``cb`` has a real ``name`` method (not the Callback base class's no-op)."""
    method = getattr(cb, name, None)
    return callable(method) and not getattr(method, "_luzwidget_noop", False)


def check_callbacks(callbacks: Iterable[Any]) -> list[Any]:
    """Check each callback's ``on_*`` methods name events and take ``(ctx)``; sort by weight.

    Raises
    ------
    ConfigError
        Naming the callback, the bad method and the valid names.
    """
    items = list(callbacks)
    for cb in items:
        if isinstance(cb, type):
            raise ConfigError(
                f"callbacks: got the class {cb.__name__}; pass an instance: {cb.__name__}()."
            )
        if not any(name.startswith("on_") for name in dir(type(cb))):
            raise ConfigError(
                f"callbacks: {cb!r:.60} is not a callback: it has no on_<event> methods. "
                "Subclass luzwidget.Callback and override the events you need."
            )
        for name in dir(type(cb)):
            if not name.startswith("on_") or not _overrides(cb, name):
                continue
            if name not in _EVENT_NAMES:
                raise ConfigError(
                    f"{type(cb).__name__}.{name} is not an event, so it would never be called. "
                    f"Valid method names: {', '.join(sorted(_EVENT_NAMES))}."
                )
            _check_signature(cb, name)
    return sorted(items, key=lambda cb: getattr(cb, "weight", 0))


def _check_signature(cb: Any, name: str) -> None:
    try:
        inspect.signature(getattr(cb, name)).bind(None)
    except TypeError:
        raise ConfigError(
            f"{type(cb).__name__}.{name} must take one argument, the context: "
            f"def {name}(self, ctx): ..."
        ) from None
    except ValueError:  # no signature available (builtins): trust it
        return


def build_dispatch_table(callbacks: list[Any]) -> dict[Event, tuple[Callable[..., Any], ...]]:
    """For each event, the bound methods to call, in order (empty tuple when none)."""
    return {
        event: tuple(getattr(cb, event.value) for cb in callbacks if _overrides(cb, event.value))
        for event in Event
    }
