"""Commands from the browser: strict parsing of typed values, applied through the Run API.

Nothing typed into the dashboard is evaluated: numbers are matched against a regular
expression and converted with ``float``/``int``; every refusal carries a message that says
what was expected.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from traitlets import TraitError

from luzwidget.events import Event
from luzwidget.exceptions import EditError
from luzwidget.run import RunState

__all__ = [
    "BUTTONS",
    "Ack",
    "EditError",
    "button_states",
    "handle_command",
    "parse_bool",
    "parse_int",
    "parse_positive_float",
]

_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INT = re.compile(r"[+-]?\d+", re.ASCII)
_MAX_TEXT = 40

BUTTONS = ("start", "pause", "step_batch", "step_epoch", "step_to", "stop", "retry", "skip")
"""Every button whose enabled state the kernel decides."""

_ENABLED = {
    RunState.READY: {"start", "step_batch", "step_epoch", "step_to", "stop"},
    RunState.RUNNING: {"pause", "stop"},
    RunState.PAUSED: {"start", "step_batch", "step_epoch", "step_to", "stop"},
    RunState.ERROR: {"stop", "retry", "skip"},
    RunState.DONE: set(),
}


@dataclass
class Ack:
    """The kernel's answer to one command (sent back with the next update)."""

    id: Any
    ok: bool
    message: str
    field: str | None = None
    value: Any = None

    def to_json(self) -> dict[str, Any]:
        """As sent to the browser."""
        out = {"id": self.id, "ok": self.ok, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
            out["value"] = self.value
        return out


def button_states(state: str) -> dict[str, bool]:
    """Which buttons are enabled in run state ``state`` (unknown states: none)."""
    on = _ENABLED.get(state, set())
    return {name: name in on for name in BUTTONS}


def _text(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise EditError(f"{field}: expected a number typed as text, got {type(value).__name__}.")
    text = str(value).strip()
    if not text:
        raise EditError(f"{field}: empty; type a number.")
    if len(text) > _MAX_TEXT:
        raise EditError(f"{field}: {len(text)} characters is too long for a number.")
    return text


def parse_positive_float(value: Any, field: str = "lr") -> float:
    """``"1e-3"`` -> ``0.001``; refuse anything but a finite number > 0 written plainly."""
    text = _text(value, field)
    if not _FLOAT.fullmatch(text):
        raise EditError(f"{field}: {text!r} is not a number; type e.g. 0.01 or 1e-3.")
    number = float(text)
    if not math.isfinite(number) or number <= 0:
        raise EditError(f"{field} must be a finite number > 0, got {text}.")
    return number


def parse_int(value: Any, field: str) -> int:
    """``"12"`` -> ``12``; refuse fractions, words and negative numbers."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = _text(value, field)
    if not _INT.fullmatch(text):
        raise EditError(f"{field}: {text!r} is not a whole number; type e.g. 10.")
    number = int(text)
    if number < 0:
        raise EditError(f"{field} must be >= 0, got {number}.")
    return number


def parse_bool(value: Any, field: str) -> bool:
    """``True``/``False`` (or the strings "true"/"false")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise EditError(f"{field}: expected true or false, got {value!r}.")


def _event(value: Any) -> Event:
    try:
        return Event.parse(value if isinstance(value, str) else "", argument="event")
    except ValueError as exc:
        raise EditError(str(exc)) from None


def current_value(run: Any, field: str, opt: str | None = None) -> Any:
    """The value a field shows after an edit (the run's own, so refusals snap back)."""
    ctx = run.ctx
    if field == "lr":
        optimizers = ctx.optimizers or {}
        o = optimizers.get(opt) if opt else next(iter(optimizers.values()), None)
        return format_lr(o.param_groups[0]["lr"]) if o is not None and o.param_groups else ""
    if field in ("max_epochs", "min_epochs"):
        return str(getattr(ctx, field))
    if field == "verbose":
        return bool(ctx.verbose)
    if field == "nonfinite_loss":
        return bool(run.breakpoints.nonfinite_loss)
    return None


def format_lr(lr: Any) -> str:
    """Shortest text that reads back as the same float (``0.01``, ``0.0003``)."""
    return repr(float(lr))


def _edit(run: Any, msg: dict[str, Any]) -> str:
    field = msg.get("field")
    value = msg.get("value")
    if field == "lr":
        opt = msg.get("opt")
        if opt is not None and opt not in (run.ctx.optimizers or {}):
            raise EditError(f"lr: no optimizer named {opt!r}.")
        lr = parse_positive_float(value, "lr")
        run.set_lr(lr, opt_name=opt)  # every parameter group gets lr (set_lr's default)
        chosen = [run.ctx.optimizers[opt]] if opt else list(run.ctx.optimizers.values())
        groups = " in every parameter group" if any(len(o.param_groups) > 1 for o in chosen) else ""
        return f"lr{f' of {opt}' if opt else ''} set to {format_lr(lr)}{groups}"
    if field in ("max_epochs", "min_epochs"):
        run.edit(field, parse_int(value, field))
        return f"{field} set to {getattr(run.ctx, field)}"
    if field == "verbose":
        run.edit("verbose", parse_bool(value, field))
        return f"verbose {'on' if run.ctx.verbose else 'off'}"
    if field == "nonfinite_loss":
        run.breakpoints.nonfinite_loss = parse_bool(value, field)
        return f"pause on NaN/inf loss {'on' if run.breakpoints.nonfinite_loss else 'off'}"
    if field == "breakpoint":
        event = _event(msg.get("event"))
        if parse_bool(value, "breakpoint"):
            if event not in run.breakpoints:
                run.breakpoints.add(event)
            return f"breakpoint at {event.value}"
        if event in run.breakpoints:
            run.breakpoints.remove(event)
        return f"breakpoint at {event.value} removed"
    raise EditError(f"cannot edit {field!r}; editable: lr, max_epochs, min_epochs, verbose.")


def _control(run: Any, msg: dict[str, Any]) -> str:
    cmd = msg["cmd"]
    was = run.state
    if cmd == "start":
        run.start()
        said = "started" if was == RunState.READY else "resumed"
        return _queued(said) if was == RunState.RUNNING else said
    if cmd == "pause":
        if was != RunState.RUNNING:
            return f"the run is {was}: nothing to pause"
        run.pause()
        return "pausing at the next event"
    if cmd == "step":
        what = msg.get("what")
        until: Any = what if what in ("batch", "epoch") else _event(what)
        run.start(until=until)
        said = f"running to the next {until if isinstance(until, str) else until.value}"
        return _queued(said) if was == RunState.RUNNING else said
    if cmd == "stop":
        run.stop()
        return "stopped"
    if cmd == "retry":
        run.retry(background=True)  # never block the kernel inside a widget message
        return "retrying the failed step"
    if cmd == "skip":
        run.skip(background=True)
        return "skipped the failed step"
    raise EditError(f"unknown command {cmd!r}.")


def _queued(said: str) -> str:
    return f"queued behind the command in progress; then {said}"


_CONTROLS = frozenset({"start", "pause", "step", "stop", "retry", "skip"})
_EXPECTED = (EditError, TraitError, ValueError, TypeError, RuntimeError, KeyError, AttributeError)


def handle_command(run: Any, msg: dict[str, Any]) -> Ack:
    """Apply one command message from the browser to ``run``; never raise.

    ``{"cmd": "edit", "field": ..., "value": ...}`` edits a setting; ``start``, ``pause``,
    ``step`` (``what``: "batch", "epoch" or an event name), ``stop``, ``retry`` and ``skip``
    drive the run. Errors raised by the run (``ConfigError``, ``RunStateError``...) become
    refusals carrying their message.
    """
    cmd = msg.get("cmd")
    ident = msg.get("id")
    field = msg.get("field") if cmd == "edit" else None
    try:
        if cmd == "edit":
            text = _edit(run, msg)
        elif cmd in _CONTROLS:
            text = _control(run, msg)
        else:
            raise EditError(f"unknown command {cmd!r}.")
        ok = True
    except _EXPECTED as exc:
        text, ok = str(exc) or type(exc).__name__, False
    value = current_value(run, field, msg.get("opt")) if field else None
    return Ack(ident, ok, text, field, value)
