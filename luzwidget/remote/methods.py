"""The Run API calls a client may make, from JSON arguments to JSON values (server side).

Each function takes the served :class:`~luzwidget.Run` and the call's arguments as they
came off the wire, checks their types (data only: an event is a name, a number is a
number; a condition or a loss function is code and is refused), and calls the Run API,
whose own checks refuse a bad value exactly as for a local call. :func:`call` is the one
entry; :data:`luzwidget.remote.protocol.METHODS` lists the names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError
from luzwidget.remote.protocol import METHODS, jsonable

if TYPE_CHECKING:
    from luzwidget.control.run import Run

__all__ = ["call", "status"]

_SCALARS = (bool, int, float, str, type(None))


def call(run: Run, method: Any, args: Any) -> Any:
    """Apply call ``method`` with keyword ``args`` to ``run``; return its JSON value.

    Raises
    ------
    ConfigError
        If the method is unknown or the arguments are not what it takes; the Run API's
        own errors (``ConfigError``, ``RunStateError``) pass through.
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ConfigError(
            f"method: unknown {method!r}; a served run answers {', '.join(sorted(METHODS))}."
        )
    if not isinstance(args, dict):
        raise ConfigError(f"{method}: args must be an object, got {type(args).__name__}.")
    fn = _TABLE[method]
    try:
        return jsonable(fn(run, **args))
    except TypeError as exc:
        if "argument" not in str(exc):
            raise
        raise ConfigError(f"{method}: {exc}") from None


def status(run: Run) -> dict[str, Any]:
    """Where the run is: state, reason, event, epoch, batch, limits, error, learning rates."""
    ctx = run.ctx
    error = run.error
    return {
        "state": str(run.state),
        "reason": run.reason,
        "event": run.event.value if run.event is not None else None,
        "n_events": run.n_events,
        "epoch": ctx.epoch,
        "iter": ctx.iter,
        "max_epochs": ctx.max_epochs,
        "min_epochs": ctx.min_epochs,
        "interrupted": run.interrupted,
        "notice": run.notice,
        "error": None if error is None else f"{type(error).__name__}: {error}",
        "error_traceback": run.error_traceback,
        "lr": {
            name: float(opt.param_groups[0]["lr"]) if opt.param_groups else None
            for name, opt in (ctx.optimizers or {}).items()
        },
    }


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{what}: expected a name (text), got {type(value).__name__} {value!r}.")
    return value


def _until(value: Any) -> str | Event | None:
    if value is None or value in ("event", "batch", "epoch"):
        return value  # type: ignore[no-any-return]  # None or one of those strings
    return Event.parse(_name(value, "until"), argument="until")


def _start(run: Run, until: Any = None, n: Any = 1) -> dict[str, Any]:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"start: n must be a positive int, got {n!r}.")
    run.start(until=_until(until), n=n)
    return status(run)


def _pause(run: Run, reason: Any = "paused from a notebook") -> dict[str, Any]:
    run.pause(_name(reason, "reason"))
    return status(run)


def _stop(run: Run) -> dict[str, Any]:
    run.stop()
    return status(run)


def _retry(run: Run) -> dict[str, Any]:
    run.retry(background=True)  # the server thread never drives the loop itself
    return status(run)


def _skip(run: Run) -> dict[str, Any]:
    run.skip(background=True)
    return status(run)


def _set_lr(run: Run, lr: Any, opt_name: Any = None, keep_ratios: Any = False) -> dict[str, Any]:
    if isinstance(lr, bool) or not isinstance(lr, int | float):
        raise ConfigError(f"set_lr: lr must be a number, got {type(lr).__name__} {lr!r}.")
    run.set_lr(lr, None if opt_name is None else _name(opt_name, "opt_name"), keep_ratios)
    return status(run)


def _edit(run: Run, field: Any, value: Any) -> dict[str, Any]:
    if field == "loss_fn":
        raise ConfigError(
            "edit: loss_fn is code, and an attached notebook sends data only; change it in "
            "the training script, or edit max_epochs, min_epochs or verbose from here."
        )
    if not isinstance(value, _SCALARS):
        raise ConfigError(f"edit: value must be a number, text or bool, got {value!r}.")
    run.edit(_name(field, "field"), value)
    return status(run)


def _breakpoints(run: Run) -> dict[str, Any]:
    bps = run.breakpoints
    return {
        "events": sorted(e.value for e in bps.events),
        "conditions": [repr(b) for b in bps if not isinstance(b, Event)],
        "nonfinite_loss": bps.nonfinite_loss,
        "nonfinite": bps.nonfinite,
    }


def _event(value: Any) -> Event:
    if callable(value) or not isinstance(value, str):
        raise ConfigError(
            f"breakpoints: an attached notebook sends event names only (a condition is "
            f"code: add it in the training script), got {value!r}."
        )
    return Event.parse(value, argument="event")


def _breakpoint_add(run: Run, event: Any) -> dict[str, Any]:
    run.breakpoints.add(_event(event))
    return _breakpoints(run)


def _breakpoint_remove(run: Run, event: Any) -> dict[str, Any]:
    run.breakpoints.remove(_event(event))
    return _breakpoints(run)


def _breakpoint_clear(run: Run) -> dict[str, Any]:
    run.breakpoints.clear()
    return _breakpoints(run)


def _breakpoint_flag(run: Run, name: Any, value: Any) -> dict[str, Any]:
    if name not in ("nonfinite_loss", "nonfinite") or not isinstance(value, bool):
        raise ConfigError(
            "breakpoints: set nonfinite_loss or nonfinite to True or False, got "
            f"{name!r}={value!r}."
        )
    setattr(run.breakpoints, name, value)
    return _breakpoints(run)


def _field(run: Run, name: Any) -> Any:
    ctx = run.ctx
    if not isinstance(name, str) or not ctx.has_trait(name) or name.startswith("_"):
        raise ConfigError(
            f"ctx: no field {name!r}; fields: {', '.join(sorted(ctx.trait_names()))}."
        )
    value = getattr(ctx, name)
    if isinstance(value, _SCALARS):
        return value
    from luzwidget.core.summaries import summarize

    return {"summary": summarize(name, value, stats=True)}


def _summaries(run: Run) -> dict[str, str]:
    from luzwidget.core.summaries import FIELD_ORDER, summarize

    ctx = run.ctx
    names = [n for n in FIELD_ORDER if ctx.has_trait(n)]
    names += sorted(set(ctx.trait_names()) - set(names))
    return {name: summarize(name, getattr(ctx, name), stats=True) for name in names}


def _records(run: Run) -> Any:
    return run.ctx.records


def _frame(frame: Any) -> dict[str, Any]:
    split = frame.to_dict(orient="split")
    return {"columns": list(split["columns"]), "data": split["data"]}


def _layers(run: Run) -> dict[str, Any]:
    return _frame(run.layers())


def _activations(run: Run) -> dict[str, Any]:
    return _frame(run.activations())


_TABLE: dict[str, Callable[..., Any]] = {
    "status": status,
    "start": _start,
    "pause": _pause,
    "stop": _stop,
    "retry": _retry,
    "skip": _skip,
    "set_lr": _set_lr,
    "edit": _edit,
    "breakpoints": _breakpoints,
    "breakpoint_add": _breakpoint_add,
    "breakpoint_remove": _breakpoint_remove,
    "breakpoint_clear": _breakpoint_clear,
    "breakpoint_flag": _breakpoint_flag,
    "field": _field,
    "summaries": _summaries,
    "records": _records,
    "layers": _layers,
    "activations": _activations,
}
