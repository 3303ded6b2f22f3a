"""Branches: a new, independent Run from a snapshot of another, with edits.

See :mod:`luzwidget.snapshots`. Model, optimizers and callbacks are deep copies (without
luzwidget's own hooks, which belong to the parent run), and so are the loss function,
``buffers`` and ``hparams``; the data loaders and the accelerator are shared, the
exception handlers' dicts copied (the handlers themselves shared). The branch starts
paused at the snapshot's epoch end.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from traitlets import TraitError

from luzwidget.engine import engine_of
from luzwidget.exceptions import ConfigError
from luzwidget.snapshots import (
    START,
    Snapshot,
    TakeSnapshots,
    choose_rewindable,
    continued_fit,
    install,
    restore_snapshot,
    store_of,
)

if TYPE_CHECKING:
    from luzwidget.context import Context
    from luzwidget.run import Run

__all__ = ["branch"]

_SHARED = ("train_data", "valid_data", "accelerator", "device", "handlers", "epoch_handlers")
_COPIED = ("loss_fn", "backward", "step_opt", "autocast", "buffers", "hparams")


def branch(
    run: Run,
    snap: Snapshot | None = None,
    *,
    epoch: int | None = None,
    lr: float | dict[str, float] | None = None,
    max_epochs: int | None = None,
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
    **opt_hparams
        Any other hyperparameter every parameter group has (``momentum``,
        ``weight_decay``, ``betas``...), set in every group of every optimizer.

    Raises
    ------
    RunStateError
        If ``run`` is training (pause it first).
    ConfigError
        For a snapshot of another run or inside an epoch, or an unknown edit.
    """
    chosen = choose_rewindable(run, snap, epoch, "branch")
    new = _copy_run(run)
    restore_snapshot(new.ctx, chosen)
    _edit(new.ctx, lr, max_epochs, opt_hparams, chosen)
    loop = None if chosen.kind == START else continued_fit(new.ctx, engine_of(new.ctx))
    new._driver.replace_loop(loop, f"branched from the end of epoch {chosen.epoch}")
    store_of(new).rewound = (new.n_events, chosen.kind)
    return new


def _copy_run(run: Run) -> Run:
    """A Run like ``run``: copies of model, optimizers and callbacks, the same data."""
    from luzwidget.run import Run
    from luzwidget.session import make_context

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
    mine = [cb for cb in old.callbacks if not isinstance(cb, TakeSnapshots)]
    new = Run(ctx, run._driver._make_loop, run._driver._finish_fn)
    ctx.callbacks = copy.deepcopy(mine, memo)
    install(new)
    store_of(new).budget, store_of(new).every = store_of(run).budget, store_of(run).every
    return new


def _drop_our_hooks(ctx: Context, memo: dict[int, Any]) -> None:
    """Have the copies leave out luzwidget's own hooks (they belong to the parent run)."""
    owners: list[Any] = [*ctx.model.modules(), *ctx.optimizers.values()]
    for owner in owners:
        for name, hooks in vars(owner).items():
            if "hook" in name and isinstance(hooks, dict) and hooks:
                kept = type(hooks)()
                for key, hook in hooks.items():
                    if not _ours(hook):
                        kept[key] = hook
                memo[id(hooks)] = kept


def _ours(hook: Any) -> bool:
    owner = getattr(hook, "__self__", hook)
    module = getattr(hook, "__module__", None) or type(owner).__module__
    return str(module).startswith("luzwidget.") or type(owner).__module__.startswith("luzwidget.")


def _edit(
    ctx: Context, lr: Any, max_epochs: Any, opt_hparams: dict[str, Any], snap: Snapshot
) -> None:
    """Apply the branch's edits, each checked first (nothing is half applied)."""
    from luzwidget.context import finite_positive, optimizer_names

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
                f"hyperparameter); edits: lr, max_epochs, or one of "
                f"{', '.join(k for k in known if k != 'params')}."
            )
    if max_epochs is not None and (
        isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < snap.epoch
    ):
        raise ConfigError(
            f"branch: max_epochs must be an int >= {snap.epoch} (the snapshot's epoch), got "
            f"{max_epochs!r}."
        )
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
