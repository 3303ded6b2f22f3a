"""Commands from the browser: typed text turned into values, applied through the Run API.

This module only parses: nothing typed into the dashboard is evaluated (numbers are matched
against a regular expression and converted with ``float``/``int``), and whether a value is
allowed is for the Run API alone to say (``run.set_lr``, ``run.edit``, ``run.breakpoints``).
Every message gets an :class:`Ack`; a refusal says what was expected and quotes what was sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from traitlets import TraitError

from luzwidget.core.callback import Callback
from luzwidget.core.engine import SkipBatch
from luzwidget.core.events import Event
from luzwidget.core.exceptions import EditError, LuzwidgetError
from luzwidget.core.report import report
from luzwidget.core.states import RunState

if TYPE_CHECKING:
    from luzwidget.control.run import Run

__all__ = [
    "BUTTONS",
    "Ack",
    "EditError",
    "ack_value",
    "button_states",
    "can_skip",
    "continue_done",
    "edit_values",
    "format_lr",
    "handle_command",
    "parse_bool",
    "parse_float",
    "parse_int",
    "parse_name",
    "quote",
    "skip_paused_batch",
]


_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INT = re.compile(r"[+-]?\d+", re.ASCII)
_MAX_TEXT = 40
_MAX_QUOTE = 80

BUTTONS = ("start", "pause", "step_batch", "step_epoch", "step_to", "stop", "retry", "skip")
"""Every button whose enabled state the kernel decides."""

_ENABLED: dict[str, set[str]] = {
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


def quote(value: Any) -> str:
    """``repr(value)``, cut to :data:`_MAX_QUOTE` characters: how a refusal names what was sent."""
    text = repr(value)
    return text if len(text) <= _MAX_QUOTE else f"{text[: _MAX_QUOTE - 1]}…"


def _text(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise EditError(
            f"{field}: expected a number typed as text, got {type(value).__name__} {quote(value)}."
        )
    text = str(value).strip()
    if not text:
        raise EditError(f"{field}: empty; type a number.")
    if len(text) > _MAX_TEXT:
        raise EditError(f"{field}: {len(text)} characters is too long for a number.")
    return text


def parse_float(value: Any, field: str = "lr") -> float:
    """``"1e-3"`` -> ``0.001``: a number written plainly (the run decides if it is allowed)."""
    text = _text(value, field)
    if not _FLOAT.fullmatch(text):
        raise EditError(f"{field}: {text!r} is not a number; type e.g. 0.01 or 1e-3.")
    return float(text)


def parse_int(value: Any, field: str) -> int:
    """``"12"`` -> ``12``: a whole number written plainly (the run decides if it is allowed)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = _text(value, field)
    if not _INT.fullmatch(text):
        raise EditError(f"{field}: {text!r} is not a whole number; type e.g. 10.")
    return int(text)


def parse_bool(value: Any, field: str) -> bool:
    """``True``/``False`` (or the strings "true"/"false")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise EditError(f"{field}: expected true or false, got {quote(value)}.")


def parse_name(value: Any, field: str) -> str:
    """A name sent as text (a command, an optimizer, an event), else a refusal quoting it."""
    if not isinstance(value, str):
        kind = "missing" if value is None else f"got {type(value).__name__} {quote(value)}"
        raise EditError(f"{field}: expected a name (text); {kind}.")
    return value


def _event(value: Any, field: str) -> Event:
    try:
        return Event.parse(parse_name(value, field), argument=field)
    except EditError:
        raise
    except ValueError as exc:
        raise EditError(str(exc)) from None


def format_lr(lr: Any) -> str:
    """Shortest text that reads back as the same float (``0.01``, ``0.0003``)."""
    return repr(float(lr))


def edit_values(run: Run) -> dict[str, Any]:
    """The editable settings as the dashboard shows them: the ``config`` part, and acks.

    Read from the run itself, so a refused edit snaps back to what the run really uses.
    """
    ctx, bps = run.ctx, run.breakpoints
    return {
        "optimizers": [
            {"name": name, "lr": format_lr(opt.param_groups[0]["lr"]) if opt.param_groups else ""}
            for name, opt in (ctx.optimizers or {}).items()
        ],
        "max_epochs": str(ctx.max_epochs),
        "min_epochs": str(ctx.min_epochs),
        "verbose": bool(ctx.verbose),
        "breakpoints": sorted(e.value for e in bps.events),
        "nonfinite_loss": bool(bps.nonfinite_loss),
        "nonfinite": bool(bps.nonfinite),
    }


def ack_value(values: dict[str, Any], field: str, opt: Any = None) -> Any:
    """What field ``field`` (of optimizer ``opt``) shows after an edit, from :func:`edit_values`."""
    if field == "lr":
        lrs = {o["name"]: o["lr"] for o in values["optimizers"]}
        if isinstance(opt, str) and opt in lrs:
            return lrs[opt]
        return next(iter(lrs.values()), "")
    if field in ("max_epochs", "min_epochs", "verbose", "nonfinite_loss", "nonfinite"):
        return values[field]
    return None


def _edit(run: Run, msg: dict[str, Any]) -> str:
    field = parse_name(msg.get("field"), "field")
    value = msg.get("value")
    if field == "lr":
        opt = msg.get("opt")
        opt = None if opt is None else parse_name(opt, "opt")
        lr = parse_float(value, "lr")
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
    if field == "nonfinite":
        run.breakpoints.nonfinite = parse_bool(value, field)
        on = "on" if run.breakpoints.nonfinite else "off"
        return f"pause where a NaN/inf appears (module output, loss or gradient) {on}"
    if field == "breakpoint":
        event = _event(msg.get("event"), "event")
        if parse_bool(value, "breakpoint"):
            if event not in run.breakpoints:
                run.breakpoints.add(event)
            return f"breakpoint at {event.value}"
        if event in run.breakpoints:
            run.breakpoints.remove(event)
        return f"breakpoint at {event.value} removed"
    raise EditError(
        f"cannot edit {field!r}; editable: lr, max_epochs, min_epochs, verbose, "
        "nonfinite_loss, nonfinite, breakpoint."
    )


def _step_target(what: Any) -> str | Event:
    if what is None:
        raise EditError("step: 'what' is missing; send 'batch', 'epoch' or an event name.")
    if what in ("batch", "epoch"):
        return str(what)
    return _event(what, "what")


def continue_done(run: Run) -> None:
    """A finished run whose ``max_epochs`` was raised becomes ready to go on (``extend``)."""
    more = run.ctx.max_epochs - run.ctx.epoch
    if more < 1:
        raise EditError(
            f"the run is done at epoch {run.ctx.epoch} of max_epochs {run.ctx.max_epochs}; "
            "raise max_epochs first, then Continue."
        )
    run.extend(more)


MID_BATCH = frozenset(
    {
        Event.on_train_batch_begin,
        Event.on_train_batch_after_pred,
        Event.on_train_batch_after_loss,
        Event.on_train_batch_before_backward,
        Event.on_train_batch_before_step,
        Event.on_valid_batch_begin,
        Event.on_valid_batch_after_pred,
        Event.on_valid_batch_after_loss,
    }
)
"""Pauses inside a batch, before its optimizer steps: where Skip can abandon the batch."""


class SkipRestOfBatch(Callback):
    """Abandons the batch the run is paused in, at the next event (once, then leaves).

    The gradients are dropped at once (``p.grad = None``: an optimizer step that still
    comes skips every parameter), and the next event of the batch raises the loop's
    ``SkipBatch``: the rest of the batch does not run, its metrics are not updated, and the
    batch is listed in ``ctx``'s skipped batches, as after ``run.skip()`` on an error.
    """

    run_bound = True  # luzwidget's own, for this run only: a branch does not copy it

    weight = -1e9  # before every other callback of that event

    def __init__(self, run: Run) -> None:
        self.run = run

    def _skip(self, ctx: Any) -> None:
        self.run.remove_callback(self)
        raise SkipBatch

    on_train_batch_after_pred = on_train_batch_after_loss = _skip
    on_train_batch_before_backward = on_train_batch_before_step = _skip
    on_train_batch_after_step = on_train_batch_end = _skip
    on_valid_batch_after_pred = on_valid_batch_after_loss = on_valid_batch_end = _skip


def skip_paused_batch(run: Run) -> None:
    """Skip the rest of the batch a paused run is in (e.g. at a NaN pause) and go on."""
    if run.state != RunState.PAUSED or run.event not in MID_BATCH:
        where = run.event.value if run.event is not None else "no event"
        raise EditError(
            f"skip: abandons a batch the run is paused inside (before its optimizer step) "
            f"or a failed step; the run is {run.state} after {where}. Step to a batch event "
            "first, or use Stop."
        )
    for p in run.ctx.model.parameters():
        p.grad = None
    run.add_callback(SkipRestOfBatch(run))


def can_skip(run: Run, state: str) -> bool:
    """Whether Skip acts now: after an error, or at a pause inside a batch."""
    return state == RunState.ERROR or (state == RunState.PAUSED and run.event in MID_BATCH)


def _control(run: Run, cmd: str, msg: dict[str, Any]) -> str:
    was = run.state
    if was == RunState.DONE and cmd in ("start", "step"):
        continue_done(run)
    if cmd == "start":
        run.start()
        said = {RunState.READY: "started", RunState.DONE: "continued"}.get(was, "resumed")
        return _queued(said) if was == RunState.RUNNING else said
    if cmd == "pause":
        if was != RunState.RUNNING:
            return f"the run is {was}: nothing to pause"
        run.pause()
        return "pausing at the next event"
    if cmd == "step":
        until = _step_target(msg.get("what"))
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
        if was != RunState.ERROR:
            skip_paused_batch(run)
            run.start()
            return "skipped the rest of this batch; going on"
        run.skip(background=True)
        return "skipped the failed step"
    raise EditError(
        f"unknown command {cmd!r}; expected edit, panel, {', '.join(sorted(_CONTROLS))}."
    )


def _queued(said: str) -> str:
    return f"queued behind the command in progress; then {said}"


_CONTROLS = frozenset({"start", "pause", "step", "stop", "retry", "skip"})
_REFUSED = (LuzwidgetError, TraitError)
"""What a refusal is: the parse step's :class:`EditError` and the Run API's own errors."""


def _panel(panels: Mapping[str, Any], msg: dict[str, Any]) -> str:
    name = parse_name(msg.get("name"), "name")
    if name not in panels:
        raise EditError(f"panel: unknown {name!r}; expected one of {sorted(panels)}.")
    panels[name].set_open(parse_bool(msg.get("open"), "open"))
    return f"{name} panel {'open' if panels[name].open else 'closed'}"


def _apply(run: Run, msg: dict[str, Any], panels: Mapping[str, Any]) -> str:
    cmd = parse_name(msg.get("cmd"), "cmd")
    if cmd == "panel":
        return _panel(panels, msg)
    return _edit(run, msg) if cmd == "edit" else _control(run, cmd, msg)


def handle_command(run: Run, msg: dict[str, Any], panels: Mapping[str, Any] | None = None) -> Ack:
    """Apply one command message from the browser to ``run``; never raise, always answer.

    ``{"cmd": "edit", "field": ..., "value": ...}`` edits a setting; ``start``, ``pause``,
    ``step`` (``what``: "batch", "epoch" or an event name), ``stop``, ``retry`` and ``skip``
    drive the run. This module only turns text into values; the Run API validates them, and
    its errors (``ConfigError``, ``RunStateError``...) become refusals carrying their
    message. ``{"cmd": "panel", "name": ..., "open": bool}`` opens or closes one of
    ``panels`` (the dashboard's Layers and Batch panels, which cost nothing while closed).
    On a finished run whose ``max_epochs`` was raised, ``start`` and ``step`` continue it.
    Any other exception is a bug: it is logged with its traceback and answered as an
    internal error quoting the message.
    """
    try:
        text, ok = _apply(run, msg, panels or {}), True
    except _REFUSED as exc:
        text, ok = str(exc) or type(exc).__name__, False
    except Exception as exc:
        report(f"dashboard command {quote(msg)} failed", error=exc)
        text, ok = f"internal error on {quote(msg)}: {type(exc).__name__}: {exc}", False
    field = msg.get("field") if msg.get("cmd") == "edit" else None
    if not isinstance(field, str):
        return Ack(msg.get("id"), ok, text)
    try:
        value = ack_value(edit_values(run), field, msg.get("opt"))
    except Exception as exc:
        report("reading the run's settings failed", error=exc)
        value = None
    return Ack(msg.get("id"), ok, text, field, value)
