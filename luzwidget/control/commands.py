"""One command table: every Run API call a dashboard, its time-travel bar or an attached
notebook makes, from the values on the wire to the call.

Each :class:`Command` names a Run API call, the parameters it takes (each parsed by
:mod:`luzwidget.control.wire`: data only, nothing evaluated), and answers with an
:class:`Answer`: a message for the person who clicked, and a JSON value for a notebook that
called. Whether a value is allowed is for the Run API to say; its refusals
(``ConfigError``, ``RunStateError``) pass through :func:`call` unchanged. The dashboard
(``widgets/commands.py``), the time-travel part (``widgets/travel.py``), the served run
(``remote/server.py``) and the attached proxy (``remote/proxy.py``, whose methods are made
from this table) all go through :func:`call`.

An answer never quotes a setting read back from the run: while it trains, an edit lands at
the next event boundary, after the answer. The value a setting has is in the dashboard's
``config`` part and in ``status``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from luzwidget.control import wire
from luzwidget.control.command import Answer, Command, Param, frame_of, status
from luzwidget.control.debug_commands import find, sample_losses, sentinel, step_back
from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError
from luzwidget.core.states import RunState
from luzwidget.core.summaries import FIELD_ORDER, summarize

if TYPE_CHECKING:
    from luzwidget.control.run import Run

__all__ = ["TABLE", "call"]


def call(run: Run, name: Any, args: Any, remote: bool = False) -> Answer:
    """Apply command ``name`` with keyword ``args`` (as they came off the wire) to ``run``.

    Raises
    ------
    ConfigError
        If the command is unknown (or not for a remote caller), an argument is unknown or
        missing, or a value is not what it must be (an ``EditError``); the Run API's own
        refusals pass through.
    """
    names = sorted(n for n, c in TABLE.items() if c.remote or not remote)
    command = TABLE.get(name) if isinstance(name, str) else None
    if command is None or (remote and not command.remote):
        raise ConfigError(f"unknown command {wire.quote(name)}; expected one of {names}.")
    if not isinstance(args, Mapping):
        raise ConfigError(f"{command.name}: args must be an object, got {wire.quote(args)}.")
    known = {p.name for p in command.params}
    extra = sorted(str(k) for k in args if k not in known)
    if extra:
        raise ConfigError(
            f"{command.name}: unknown argument {wire.quote(extra[0])}; it takes "
            f"{', '.join(p.name for p in command.params) or 'no arguments'}."
        )
    parsed: dict[str, Any] = {}
    for param in command.params:
        if param.name in args and args[param.name] is not None:
            parsed[param.name] = param.parse(args[param.name], param.name)
        elif param.required:
            raise ConfigError(f"{command.name}: {param.name} is missing.")
        else:
            parsed[param.name] = param.default
    return command.apply(run, **parsed)


# -- driving ------------------------------------------------------------------------------


def _started(run: Run, was: RunState, said: str) -> Answer:
    if was == RunState.RUNNING:
        said = f"queued behind the command in progress; then {said}"
    return Answer(said, status(run))


def _start(run: Run, until: str | Event | None, n: int) -> Answer:
    was = run.state
    run.start(until=until, n=n)
    said = {RunState.READY: "started", RunState.DONE: "continued"}.get(was, "resumed")
    if until is not None:
        said += f" to the next {until if isinstance(until, str) else until.value}"
    return _started(run, was, said)


def _step(run: Run, what: str | Event, n: int) -> Answer:
    was = run.state
    run.start(until=what, n=n)  # in the background: a widget or a server never blocks
    what_text = what if isinstance(what, str) else what.value
    return _started(run, was, f"running to the next {what_text}")


def _pause(run: Run, reason: str) -> Answer:
    if run.state != RunState.RUNNING:
        return Answer(f"the run is {run.state}: nothing to pause", status(run))
    run.pause(reason)
    return Answer("pausing at the next event", status(run))


def _stop(run: Run) -> Answer:
    run.stop()
    return Answer("stopped", status(run))


def _retry(run: Run) -> Answer:
    run.retry(background=True)  # never block a widget message or the server's thread
    return Answer("retrying the failed step", status(run))


def _skip(run: Run) -> Answer:
    failed = run.state == RunState.ERROR
    run.skip(background=True)
    said = "skipped the failed step" if failed else "skipped the rest of this batch; going on"
    return Answer(said, status(run))


def _extend(run: Run, epochs: int | None) -> Answer:
    run.extend(epochs)
    return Answer(f"ready to train on to epoch {run.ctx.max_epochs}", status(run))


# -- edits ----------------------------------------------------------------------------------


def _set_lr(run: Run, lr: float, opt_name: str | None, keep_ratios: bool) -> Answer:
    run.set_lr(lr, opt_name=opt_name, keep_ratios=keep_ratios)
    chosen = [run.ctx.optimizers[opt_name]] if opt_name else list(run.ctx.optimizers.values())
    several = any(len(o.param_groups) > 1 for o in chosen)
    groups = " (scaled, keeping ratios)" if keep_ratios else " in every parameter group"
    of = f" of {opt_name}" if opt_name else ""
    return Answer(f"lr{of} set to {lr!r}{groups if several else ''}", status(run))


def _edit(run: Run, field: str, value: Any) -> Answer:
    if field == "loss_fn":
        raise ConfigError(
            "edit: loss_fn is code, and a dashboard or an attached notebook sends data only; "
            "change it in Python (run.edit('loss_fn', fn)), or edit max_epochs, min_epochs, "
            "verbose, weight_decay or batch_size from here."
        )
    if field in ("max_epochs", "min_epochs", "batch_size"):
        value = wire.whole(value, field)
    elif field == "weight_decay":
        value = wire.number(value, field)
    elif field == "verbose":
        value = wire.flag(value, field)
    run.edit(field, value)
    shown = ("on" if value else "off") if field == "verbose" else value
    when = " from the next epoch on" if field == "batch_size" else ""
    return Answer(f"{field} set to {shown}{when}", status(run))


# -- breakpoints ----------------------------------------------------------------------------

_FLAGS = {
    "nonfinite_loss": "pause on NaN/inf loss",
    "nonfinite": "pause where a NaN/inf appears (module output, loss or gradient)",
}


def _breakpoint_state(run: Run) -> dict[str, Any]:
    bps = run.breakpoints
    return {
        "events": sorted(e.value for e in bps.events),
        "conditions": [repr(b) for b in bps if not isinstance(b, Event)],
        "nonfinite_loss": bps.nonfinite_loss,
        "nonfinite": bps.nonfinite,
    }


def _breakpoints(run: Run) -> Answer:
    return Answer("the breakpoints", _breakpoint_state(run))


def _breakpoint_set(run: Run, event: Event, on: bool) -> Answer:
    bps = run.breakpoints
    if on and event not in bps:
        bps.add(event)
    elif not on and event in bps:
        bps.remove(event)
    said = f"breakpoint at {event.value}" + ("" if on else " removed")
    return Answer(said, _breakpoint_state(run))


def _breakpoint_add(run: Run, event: Event) -> Answer:
    return _breakpoint_set(run, event, True)


def _breakpoint_remove(run: Run, event: Event) -> Answer:
    if event not in run.breakpoints:
        raise ConfigError(
            f"breakpoints: no breakpoint at {event.value}; set: "
            f"{sorted(e.value for e in run.breakpoints.events) or 'none'}."
        )
    return _breakpoint_set(run, event, False)


def _breakpoint_clear(run: Run) -> Answer:
    run.breakpoints.clear()
    return Answer("every breakpoint removed", _breakpoint_state(run))


def _flag_name(value: Any, field: str) -> str:
    text = wire.name(value, field)
    if text not in _FLAGS:
        raise ConfigError(f"{field}: expected one of {sorted(_FLAGS)}, got {wire.quote(text)}.")
    return text


def _breakpoint_flag(run: Run, name: str, value: bool) -> Answer:
    setattr(run.breakpoints, name, value)
    return Answer(f"{_FLAGS[name]} {'on' if value else 'off'}", _breakpoint_state(run))


# -- time travel ----------------------------------------------------------------------------


def _index(value: Any, field: str) -> int:
    out = wire.whole(value, field)
    if out < 0:
        raise ConfigError(f"{field}: a snapshot number is >= 0, got {out}.")
    return out


def _numbered(run: Run, index: int | None) -> Any:
    if index is None:
        return None
    snaps = run.snapshots
    if index >= len(snaps):
        raise ConfigError(f"snapshot: no snapshot number {index}; this run has {len(snaps)}.")
    return snaps[index]


def _snapshot(run: Run, label: str | None) -> Answer:
    snap = run.snapshot(label)
    if snap is None:
        return Answer("snapshot at the next event", None)
    return Answer(f"snapshot taken: {snap!r}", len(run.snapshots) - 1)


def _where(snap: Any) -> str:
    if snap.iter:
        return f"epoch {snap.epoch + 1}, batch {snap.iter}"
    return "the start" if snap.kind == "start" else f"epoch {snap.epoch}"


def _rewind(run: Run, snapshot: int | None, epoch: int | None, batches: int | None) -> Answer:
    snap = run.rewind(_numbered(run, snapshot), epoch=epoch, batches=batches)
    number = next(i for i, s in enumerate(run.snapshots) if s is snap)
    return Answer(f"rewound to {_where(snap)}", number)


def _branch(run: Run, snapshot: int | None, lr: float | None, max_epochs: int | None) -> Answer:
    edits = {k: v for k, v in {"lr": lr, "max_epochs": max_epochs}.items() if v is not None}
    new = run.branch(_numbered(run, snapshot), **edits)
    return Answer("a branch made", new)


def _compare(run: Run) -> Answer:
    return Answer("the run and its branches", frame_of(run.compare()))


# -- what the run shows ---------------------------------------------------------------------


def _status(run: Run) -> Answer:
    return Answer("the status", status(run))


def _field(run: Run, name: str) -> Answer:
    ctx = run.ctx
    if not ctx.has_trait(name) or name.startswith("_"):
        raise ConfigError(
            f"ctx: no field {wire.quote(name)}; fields: {', '.join(sorted(ctx.trait_names()))}."
        )
    value = getattr(ctx, name)
    if value is None or isinstance(value, bool | int | float | str):
        return Answer(name, value)
    return Answer(name, {"summary": summarize(name, value, stats=True)})


def _summaries(run: Run) -> Answer:
    ctx = run.ctx
    names = [n for n in FIELD_ORDER if ctx.has_trait(n)]
    names += sorted(set(ctx.trait_names()) - set(names))
    return Answer("the fields", {n: summarize(n, getattr(ctx, n), stats=True) for n in names})


def _records(run: Run) -> Answer:
    return Answer("the records", run.ctx.records)


def _layers(run: Run) -> Answer:
    return Answer("the layers", frame_of(run.layers()))


def _activations(run: Run) -> Answer:
    return Answer("the activations", frame_of(run.activations()))


# -- the table ------------------------------------------------------------------------------

_UNTIL = Param("until", wire.target, None)
_EVENT = Param("event", wire.event)
_SNAP = Param("snapshot", _index, None)


def _optional_name(value: Any, field: str) -> str | None:
    return wire.name(value, field)


_COMMANDS = (
    Command("status", (), _status, "State, reason, event, epoch, batch, limits, error, lrs.",
            returns=True),
    Command("start", (_UNTIL, Param("n", wire.count, 1)), _start,
            "Train (in the training process) to the end, or to ``until`` as step does."),
    Command("step", (Param("what", wire.target, "batch"), Param("n", wire.count, 1)), _step,
            "Train to the next batch, epoch or event, in the background."),
    Command("pause", (Param("reason", wire.name, "paused from a notebook"),), _pause,
            "Pause at the next event boundary."),
    Command("stop", (), _stop, "End the run gracefully (on_fit_end runs)."),
    Command("retry", (), _retry, "After an error fixed meanwhile: redo what failed, go on."),
    Command("skip", (), _skip,
            "Abandon the failed step, or the rest of the batch paused inside; go on."),
    Command("extend", (Param("epochs", wire.count, None),), _extend,
            "A finished run trains on: epochs more, or up to a raised max_epochs."),
    Command("set_lr", (Param("lr", wire.number), Param("opt_name", _optional_name, None),
                       Param("keep_ratios", wire.flag, False)), _set_lr,
            "Set the learning rate (checked as run.set_lr checks it)."),
    Command("edit", (Param("field", wire.name), Param("value", wire.scalar)), _edit,
            "Change max_epochs, min_epochs, verbose, weight_decay or batch_size (checked as "
            "run.edit checks it)."),
    Command("breakpoints", (), _breakpoints, "The breakpoints: events, conditions, flags.",
            returns=True),
    Command("breakpoint_set", (_EVENT, Param("on", wire.flag)), _breakpoint_set,
            "Pause at an event (on) or not (off)."),
    Command("breakpoint_add", (_EVENT,), _breakpoint_add, "Pause at every ``event``."),
    Command("breakpoint_remove", (_EVENT,), _breakpoint_remove, "Stop pausing at ``event``."),
    Command("breakpoint_clear", (), _breakpoint_clear, "Remove every breakpoint."),
    Command("breakpoint_flag", (Param("name", _flag_name), Param("value", wire.flag)),
            _breakpoint_flag, "Set nonfinite_loss or nonfinite to True or False."),
    Command("snapshot", (Param("label", _optional_name, None),), _snapshot,
            "Take a snapshot (its number in run.snapshots; None: at the next event).",
            returns=True),
    Command("rewind", (_SNAP, Param("epoch", _index, None), Param("batches", _index, None)),
            _rewind, "Go back to snapshot number ``snapshot``, an epoch end, or batches back.",
            returns=True),
    Command("branch", (_SNAP, Param("lr", wire.number, None),
                       Param("max_epochs", wire.whole, None)), _branch,
            "A new paused run from a snapshot, with a new lr or max_epochs.", remote=False),
    Command("compare", (), _compare, "The run and its branches: what differs, final metrics.",
            returns=True),
    Command("step_back", (Param("what", wire.back, "batch"), Param("n", wire.count, 1)),
            step_back, "Back to where stepping by batch, event or epoch paused n times before."),
    Command("find", (Param("condition", wire.name), Param("k", wire.number, None),
                     Param("window", wire.count, None), Param("above", wire.number, None),
                     Param("below", wire.number, None)), find,
            "Pause at the first training batch where a named condition held.", returns=True),
    Command("sample_losses", (), sample_losses,
            "The current batch's per-sample losses and dataset indices.", returns=True),
    Command("sentinel", (Param("check", wire.name), Param("on", wire.flag)), sentinel,
            "Turn a sentinel check (or 'all') on or off."),
    Command("field", (Param("name", wire.name),), _field,
            "A context field: its value, or its summary.", returns=True),
    Command("summaries", (), _summaries, "Every field's summary, as the inspector shows it.",
            returns=True),
    Command("records", (), _records, "The run's records.", returns=True),
    Command("layers", (), _layers, "run.layers(), as columns and rows.", returns=True),
    Command("activations", (), _activations, "run.activations(), as columns and rows.",
            returns=True),
)  # fmt: skip

TABLE: dict[str, Command] = {command.name: command for command in _COMMANDS}
"""Every command, by name."""
