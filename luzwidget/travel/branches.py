"""Branches: a new, independent Run from a snapshot of another, with edits; and compare().

See :mod:`luzwidget.travel.snapshots`. Model, optimizers and callbacks are deep copies (without
luzwidget's own hooks, which belong to the parent run), and so are the loss function,
``buffers`` and ``hparams``; the data loaders and the accelerator are shared, the
exception handlers' dicts copied (the handlers themselves shared). The branch starts
paused where the snapshot was taken (inside an epoch: replayed there, as a rewind does).
Parent and branches form a family (``run.compare()`` tabulates it; a dashboard overlays
its curves).
"""

from __future__ import annotations

import copy
import threading
from typing import TYPE_CHECKING, Any

from traitlets import TraitError

from luzwidget.core.build import make_context
from luzwidget.core.callback import is_run_bound
from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError, RunStateError
from luzwidget.core.states import RunState
from luzwidget.storage.snapstore import Snapshot
from luzwidget.travel.replay import base_of, check_replayed, choose, put_back, replay
from luzwidget.travel.state import travel_of

if TYPE_CHECKING:
    from luzwidget.control.run import Run
    from luzwidget.core.context import Context

__all__ = ["branch", "compare", "describe", "family"]

_SHARED = ("train_data", "valid_data", "accelerator", "device", "handlers", "epoch_handlers")
_COPIED = ("loss_fn", "backward", "step_opt", "autocast", "accumulate", "buffers", "hparams")
_WAIT_S = 120.0


def branch(
    run: Run,
    snap: Snapshot | None = None,
    *,
    epoch: int | None = None,
    lr: float | dict[str, float] | None = None,
    max_epochs: int | None = None,
    breakpoints: Any = None,
    **opt_hparams: Any,
) -> Run:
    """A new, paused Run from ``snap`` (or the end of ``epoch``; default the latest
    snapshot) with edits; ``run`` is not changed and shares no tensor with it.

    Parameters
    ----------
    lr
        The new learning rate of every optimizer, or ``{name: lr}`` per optimizer.
    max_epochs
        The branch's last epoch (default the parent's).
    breakpoints
        Events (or their names) the branch pauses after, instead of the parent's.
    **opt_hparams
        Any other hyperparameter every parameter group has (``momentum``,
        ``weight_decay``, ``betas``...), set in every group of every optimizer.

    Raises
    ------
    RunStateError
        If ``run`` is training and no snapshot is given (pause it first, or give one).
    ConfigError
        For a snapshot of another run, or an unknown or refused edit.
    """
    if run.state == RunState.RUNNING and snap is None:
        raise RunStateError(
            "branch: the run is training; pause first (run.pause(); run.wait()), or branch "
            "from a snapshot: run.branch(run.snapshots[-1], ...)."
        )
    chosen = choose(run, snap, epoch, "branch")
    base = base_of(run, chosen)
    events = _check_breakpoints(breakpoints)
    new = _copied_now(run)
    put_back(new, base, f"branched from the end of epoch {base.epoch}")
    if chosen is not base:
        assert chosen.position is not None
        replay(new, chosen.position, f"branched from epoch {chosen.epoch + 1}, batch {chosen.iter}")
        check_replayed(new, chosen)
    given = _edit(new.ctx, lr, max_epochs, opt_hparams, chosen)
    if events is not None:
        new.breakpoints.clear()
        for event in events:
            new.breakpoints.add(event)
        given["breakpoints"] = [e.value for e in events]
    travel = travel_of(new)
    travel.family.parent = run
    travel.family.origin = {"snapshot": chosen, "edits": given}
    travel.last_key = chosen.key
    travel_of(run).family.children.append(new)
    return new


def _check_breakpoints(given: Any) -> list[Event] | None:
    if given is None:
        return None
    items = [given] if isinstance(given, str | Event) else given
    try:
        return [Event.parse(e, argument="breakpoints") for e in items]
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"branch: breakpoints must be event names or Events, e.g. ['on_epoch_end'], got "
            f"{given!r} ({exc})."
        ) from None


def _copied_now(run: Run) -> Run:
    """``_copy_run(run)``, at the next event boundary when another thread trains it."""
    out: list[Any] = []
    done = threading.Event()

    def copy_it() -> None:
        try:
            out.append(_copy_run(run))
        except Exception as exc:
            out.append(exc)
        finally:
            done.set()

    run.submit(copy_it)
    if not done.wait(_WAIT_S) or not out:
        raise RunStateError(
            f"branch: the training run reached no event boundary within {_WAIT_S:.0f} s to be "
            "copied at; pause it (run.pause(); run.wait()) and branch again."
        )
    if isinstance(out[0], Exception):
        raise out[0]
    return out[0]  # type: ignore[no-any-return]  # a Run


def _copy_run(run: Run) -> Run:
    """A Run like ``run``: copies of model, optimizers and callbacks, the same data."""
    old = run.ctx
    memo: dict[int, Any] = {id(getattr(old, name)): getattr(old, name) for name in _SHARED}
    _drop_our_hooks(old, memo)
    model = copy.deepcopy(old.model, memo)
    fields = {name: getattr(old, name) for name in _SHARED}
    fields.update(handlers=dict(old.handlers), epoch_handlers=dict(old.epoch_handlers))
    fields.update({name: copy.deepcopy(getattr(old, name), memo) for name in _COPIED})
    ctx = make_context(
        model,
        old.accelerator,
        [],
        optimizers=copy.deepcopy(dict(old.optimizers), memo),
        verbose=old.verbose,
        max_epochs=old.max_epochs,
        min_epochs=old.min_epochs,
        **{k: v for k, v in fields.items() if k != "accelerator"},
    )
    if old.step is not None and ctx.step is None:
        ctx.step = old.step  # a step given otherwise than by the module (rare)
    memo[id(old)] = ctx
    mine = [cb for cb in old.callbacks if not is_run_bound(cb)]
    ctx.callbacks = copy.deepcopy(mine, memo)
    new = run.spawn(ctx)  # equipped as ``run`` was: its own snapshots, views...
    store, mine_store = travel_of(new).store, travel_of(run).store
    store.budget, store.every = mine_store.budget, mine_store.every
    return new


def _drop_our_hooks(ctx: Context, memo: dict[int, Any]) -> None:
    """Have the copies leave out luzwidget's own hooks (they belong to the parent run)."""
    owners: list[Any] = [*ctx.model.modules(), *ctx.optimizers.values()]
    for owner in owners:
        for name, hooks in vars(owner).items():
            if "hook" in name and isinstance(hooks, dict) and hooks:
                kept = type(hooks)()
                for key, hook in hooks.items():
                    if not is_run_bound(hook):
                        kept[key] = hook
                memo[id(hooks)] = kept


def _edit(
    ctx: Context, lr: Any, max_epochs: Any, opt_hparams: dict[str, Any], snap: Snapshot
) -> dict[str, Any]:
    """Apply the branch's edits, each checked first (nothing is half applied); return them."""
    from luzwidget.core.context import epochs_in_range, finite_positive, optimizer_names

    lrs: dict[str, float] = {}
    if lr is not None:
        given = lr if isinstance(lr, dict) else dict.fromkeys(ctx.optimizers, lr)
        for name in optimizer_names(ctx, list(given), "branch"):
            try:
                lrs[name] = finite_positive(given[name], f"lr of {name!r}")
            except TraitError as exc:
                raise ConfigError(f"branch: {exc}") from None
    for key in opt_hparams:
        missing = [
            n for n, o in ctx.optimizers.items() if any(key not in g for g in o.param_groups)
        ]
        if key in ("params", "lr") or missing:
            known = sorted({k for o in ctx.optimizers.values() for g in o.param_groups for k in g})
            raise ConfigError(
                f"branch: unknown edit {key!r} (optimizer(s) {missing or key} have no such "
                f"hyperparameter); edits: lr, max_epochs, breakpoints, or one of "
                f"{', '.join(k for k in known if k != 'params')}."
            )
    if max_epochs is not None:  # from the snapshot's epoch on
        epochs_in_range(max_epochs, "branch: max_epochs", floor=snap.epoch)
    for name, value in lrs.items():
        for group in ctx.optimizers[name].param_groups:
            group["lr"] = value
    for key, value in opt_hparams.items():
        for opt in ctx.optimizers.values():
            for group in opt.param_groups:
                group[key] = value
    if max_epochs is not None:
        ctx.min_epochs = min(ctx.min_epochs, max_epochs)
        ctx.max_epochs = max_epochs
    edits = {**opt_hparams, **({"lr": lr} if lr is not None and not isinstance(lr, dict) else {})}
    ctx.opt_hparams = {**ctx.opt_hparams, **edits}
    given = {"lr": lr, "max_epochs": max_epochs}
    return {k: v for k, v in {**given, **opt_hparams}.items() if v is not None}


# -- the family: a run, its branches, theirs -----------------------------------------------


def family(run: Run) -> list[tuple[str, Run]]:
    """Every run of ``run``'s family, named: the first run ``"main"``, then its branches
    depth first (``"branch 1"``, ``"branch 1.1"``...), in the order they were made."""
    root = run
    while (parent := travel_of(root).family.parent) is not None:
        root = parent
    out: list[tuple[str, Run]] = []

    def walk(node: Run, name: str, prefix: str) -> None:
        out.append((name, node))
        for i, child in enumerate(travel_of(node).family.children, 1):
            walk(child, f"branch {prefix}{i}", f"{prefix}{i}.")

    walk(root, "main", "")
    return out


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_number(v)}" for k, v in value.items()) + "}"
    return str(value)


def describe(run: Run) -> str:
    """What makes ``run`` a branch, as a legend says it: ``"lr 0.01 from epoch 2"``
    (``""`` for a run that is no branch)."""
    origin = travel_of(run).family.origin
    if origin is None:
        return ""
    snap: Snapshot = origin["snapshot"]
    edits = ", ".join(f"{k} {_number(v)}" for k, v in origin["edits"].items()) or "a copy"
    where = f"epoch {snap.epoch}" if snap.iter == 0 else f"epoch {snap.epoch + 1} batch {snap.iter}"
    return f"{edits} from {where}"


def compare(run: Run) -> Any:
    """A DataFrame, one row per run of the family (see :func:`family`): ``run`` (its
    name), ``this`` (the run asked), ``branched`` (what differs and from where), ``state``,
    ``epoch``, then the last epoch's metrics, one column per set and metric
    (``train_loss``, ``valid_loss``...; NaN where a run has none)."""
    import pandas as pd

    rows = []
    for name, member in family(run):
        row: dict[str, Any] = {
            "run": name,
            "this": member is run,
            "branched": describe(member),
            "state": str(member.state),
            "epoch": int(member.ctx.epoch),
        }
        history = member.ctx.history
        for set_name in history.sets():
            if history.epochs(set_name):
                _, values = history.last(set_name)
                for metric, value in values.items():
                    row[f"{set_name}_{metric}"] = _float(value)
        rows.append(row)
    return pd.DataFrame(rows)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
