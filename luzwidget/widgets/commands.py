"""Commands from the browser: each message mapped onto the one command table.

The dashboard's messages (``{"cmd": "edit", "field": "lr", "value": "1e-3"}``, ``{"cmd":
"step", "what": "batch"}``, ``{"cmd": "travel", "action": "rewind", ...}``) name what was
clicked; :func:`handle_command` turns each into a call of
:data:`luzwidget.control.commands.TABLE` (where values are parsed and the Run API decides),
except what only concerns this view (a panel opened, which run of a family it shows). Every
message gets an :class:`Ack`: ok and a message. The values the run now uses come in the
``config`` and ``status`` parts (:func:`edit_values`), never in an ack: an edit of a run
training in another thread lands after the ack is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from traitlets import TraitError

from luzwidget.control import commands, wire
from luzwidget.core.engine import engine_of
from luzwidget.core.exceptions import EditError, LuzwidgetError
from luzwidget.core.rebatch import batch_size_of
from luzwidget.core.report import report
from luzwidget.core.states import RunState

if TYPE_CHECKING:
    from luzwidget.control.run import Run

__all__ = ["BUTTONS", "Ack", "button_states", "can_skip", "edit_values", "handle_command"]

BUTTONS = (
    "start",
    "pause",
    "step_batch",
    "step_epoch",
    "step_to",
    "stop",
    "retry",
    "skip",
    "step_back",
    "find_nan",
    "find_spike",
)
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
    mark: str | None = None  # an accepted lr edit: its label on the loss plot (not sent)

    def to_json(self) -> dict[str, Any]:
        """As sent to the browser."""
        return {"id": self.id, "ok": self.ok, "message": self.message}


def button_states(state: str) -> dict[str, bool]:
    """Which buttons are enabled in run state ``state`` (unknown states: none)."""
    on = _ENABLED.get(state, set())
    return {name: name in on for name in BUTTONS}


def can_skip(run: Run, state: str) -> bool:
    """Whether Skip acts now: after an error, or at a pause inside a batch."""
    mid_batch = run.event is not None and run.event.mid_batch
    return state == RunState.ERROR or (state == RunState.PAUSED and mid_batch)


def format_lr(lr: Any) -> str:
    """Shortest text that reads back as the same float (``0.01``, ``0.0003``)."""
    return repr(float(lr))


def edit_values(run: Run) -> dict[str, Any]:
    """The editable settings as the dashboard shows them: the ``config`` part.

    Read from the run itself, so a refused edit snaps back to what the run really uses.
    """
    ctx, bps = run.ctx, run.breakpoints
    return {
        "optimizers": [
            {"name": name, "lr": format_lr(opt.param_groups[0]["lr"]) if opt.param_groups else ""}
            for name, opt in (ctx.optimizers or {}).items()
        ],
        "max_epochs": str(ctx.max_epochs),
        "weight_decay": _weight_decay(run),
        "batch_size": _batch_size(run),
        "min_epochs": str(ctx.min_epochs),
        "verbose": bool(ctx.verbose),
        "breakpoints": sorted(e.value for e in bps.events),
        "nonfinite_loss": bool(bps.nonfinite_loss),
        "nonfinite": bool(bps.nonfinite),
    }


def _weight_decay(run: Run) -> str:
    """The first parameter group's weight decay ("" without an optimizer or the setting)."""
    for opt in (run.ctx.optimizers or {}).values():
        for group in opt.param_groups:
            if "weight_decay" in group:
                return format_lr(group["weight_decay"])
    return ""


def _batch_size(run: Run) -> str:
    """The training loader's batch size, and ``" → n"`` while a change waits for the next
    epoch ("" without one)."""
    size = batch_size_of(run.ctx.train_data)
    pending = engine_of(run.ctx).rebatch
    after = f" → {pending}" if pending is not None and pending != size else ""
    return ("" if size is None else str(size)) + after


# -- a message -> a call of the table -------------------------------------------------------

Call = tuple[str, dict[str, Any]]
_FLAGS = ("nonfinite_loss", "nonfinite")


def _edit(msg: Mapping[str, Any]) -> Call:
    field = wire.name(msg.get("field"), "field")
    value = msg.get("value")
    if field == "lr":
        return "set_lr", {"lr": value, "opt_name": msg.get("opt")}
    if field in ("max_epochs", "min_epochs", "verbose", "weight_decay", "batch_size"):
        return "edit", {"field": field, "value": value}
    if field in _FLAGS:
        return "breakpoint_flag", {"name": field, "value": value}
    if field == "breakpoint":
        return "breakpoint_set", {"event": msg.get("event"), "on": value}
    raise EditError(
        f"cannot edit {wire.quote(field)}; editable: lr, max_epochs, min_epochs, verbose, "
        "weight_decay, batch_size, nonfinite_loss, nonfinite, breakpoint."
    )


def _control(cmd: str, msg: Mapping[str, Any]) -> Call:
    if cmd == "step":
        if msg.get("what") is None:
            raise EditError("step: 'what' is missing; send 'batch', 'epoch' or an event name.")
        return "step", {"what": msg.get("what")}
    if cmd in ("start", "pause", "stop", "retry", "skip"):
        return cmd, {}
    if cmd == "step_back":
        return "step_back", {"what": msg.get("what") or "batch"}
    if cmd == "find":
        return "find", {"condition": msg.get("condition")}
    raise EditError(
        f"unknown command {wire.quote(cmd)}; expected edit, panel, travel, start, pause, step, "
        "step_back, find, stop, retry or skip."
    )


def _panel(panels: Mapping[str, Any], msg: Mapping[str, Any]) -> str:
    name = wire.name(msg.get("name"), "name")
    if name not in panels:
        raise EditError(f"panel: unknown {wire.quote(name)}; expected one of {sorted(panels)}.")
    panels[name].set_open(wire.flag(msg.get("open"), "open"))
    pick = msg.get("pick")
    if pick is not None and hasattr(panels[name], "pick"):  # Layers over time: the heatmap's
        try:
            panels[name].pick(wire.name(pick, "pick"))
        except ValueError as exc:
            raise EditError(str(exc)) from None
        return f"{name} panel shows {pick}"
    return f"{name} panel {'open' if panels[name].open else 'closed'}"


_REFUSED = (LuzwidgetError, TraitError)
"""What a refusal is: a parse's :class:`EditError` and the Run API's own errors."""

View = Callable[["Run", Mapping[str, Any]], "str | None"]
"""A view's own commands: a message in, the ack's text out (None: not the view's)."""


def handle_command(
    run: Run,
    msg: Mapping[str, Any],
    panels: Mapping[str, Any] | None = None,
    view: View | None = None,
) -> Ack:
    """Apply one command message from the browser to ``run``; never raise, always answer.

    ``{"cmd": "edit", "field": ..., "value": ...}`` edits a setting; ``start``, ``pause``,
    ``step`` (``what``: "batch", "epoch" or an event name), ``stop``, ``retry`` and ``skip``
    drive the run; ``step_back`` (``what``, default "batch") and ``find`` (``condition``:
    "nan", "biggest_spike"...) take it back; ``{"cmd": "panel", "name": ..., "open":
    bool}`` opens or closes one of ``panels`` (the Layers and Batch panels, which cost
    nothing while closed). ``view`` answers the messages only a view knows (the
    time-travel part's, see :func:`luzwidget.widgets.travel.travel_view`). Refusals (a
    parse's, the Run API's) are answered with their message; any other exception is a bug:
    logged with its traceback and answered as an internal error quoting the message.
    """
    try:
        cmd = wire.name(msg.get("cmd"), "cmd")
        said = view(run, msg) if view is not None else None
        if said is None and cmd == "panel":
            said = _panel(panels or {}, msg)
        mark = None
        if said is None:
            name, args = _edit(msg) if cmd == "edit" else _control(cmd, msg)
            said = commands.call(run, name, args).message
            if name == "set_lr":
                mark = f"lr {format_lr(wire.number(args['lr'], 'lr'))}"
        return Ack(msg.get("id"), True, said, mark)
    except _REFUSED as exc:
        return Ack(msg.get("id"), False, str(exc) or type(exc).__name__)
    except Exception as exc:
        report(f"dashboard command {wire.quote(msg)} failed", error=exc)
        return Ack(msg.get("id"), False, f"internal error on {wire.quote(msg)}: {exc!r}")
