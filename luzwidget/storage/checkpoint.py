"""Checkpoints of a run, the RNG states, and the checks a file passes before it is loaded.

Files are written and read by :mod:`luzwidget.storage.files` (weights-only, so loading never runs
code from a file). Three kinds of file:

* a **checkpoint** (:func:`save_checkpoint`, written by ``ModelCheckpoint`` and
  ``AutoResume``): model, every optimizer, records, every callback's ``state_dict``,
  the epoch, the RNG states (torch, CUDA, numpy, python) and the data position;
* a **fitted model** (:func:`luzwidget.save` / :func:`luzwidget.load`, in
  :mod:`luzwidget.saving`): the model's class (by import path), hparams, weights,
  optimizers (class, parameter names, state), records;
* **weights** alone (``save_weights`` / ``load_weights``): a plain ``state_dict``.

A file that does not match the model it is loaded into raises
:class:`~luzwidget.core.exceptions.CheckpointError` naming the file and what did not match,
before anything is changed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from luzwidget.core.compiled import align_keys, original
from luzwidget.core.exceptions import CheckpointError
from luzwidget.core.generators import generator_states, set_generator_states
from luzwidget.core.rebatch import batch_size_of, set_batch_size
from luzwidget.storage.files import VERSION, PathLike, plain, write_once

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = [
    "capture",
    "check_model_state",
    "check_optimizer_states",
    "get_rng_states",
    "keyed_callbacks",
    "optimizer_class",
    "restore",
    "save_checkpoint",
    "set_rng_states",
]

# -- RNG states ------------------------------------------------------------------------


def get_rng_states() -> dict[str, Any]:
    """The states of torch's CPU (and CUDA) RNG, numpy's and Python's, as plain values."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: Mapping[str, Any]) -> None:
    """Restore what :func:`get_rng_states` returned."""
    torch.set_rng_state(states["torch"])
    cuda = states.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    state = states["numpy"]
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (state["name"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
    )
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))


# -- checks before loading -------------------------------------------------------------


def check_model_state(model: nn.Module, state: Any, source: str) -> None:
    """Raise CheckpointError unless ``state`` has exactly ``model``'s keys and shapes."""
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"{source}: the model weights are a {type(state).__name__}, not a dict."
        )
    own = model.state_dict()
    name = type(model).__name__
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state
        and isinstance(v, torch.Tensor)
        and (not isinstance(state[k], torch.Tensor) or state[k].shape != v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing from the file: {_few(missing)}")
    if unexpected:
        problems.append(f"not in {name}: {_few(unexpected)}")
    if shapes:
        problems.append(f"different shapes: {_few(shapes)}")
    if problems:
        raise CheckpointError(
            f"{source} does not match the model {name}: "
            + "; ".join(problems)
            + ". Was it saved from another architecture or other hparams?"
        )


def check_optimizer_states(
    optimizers: Mapping[str, torch.optim.Optimizer],
    states: Any,
    source: str,
    classes: Any = None,
) -> None:
    """Raise CheckpointError unless ``states`` fit ``optimizers`` (names, classes, groups,
    shapes).

    ``classes`` are the import paths the file recorded (``{name: "pkg.mod:Adam"}``); a
    file without them (written before they were recorded) is not checked for the class.
    """
    if not isinstance(states, Mapping) or set(states) != set(optimizers):
        found = sorted(states) if isinstance(states, Mapping) else states
        raise CheckpointError(
            f"{source}: the file has optimizers {found}, the run has {sorted(optimizers)}."
        )
    for name, opt in optimizers.items():
        _check_optimizer_class(name, opt, classes, source)
        saved = states[name]
        groups = [len(g["params"]) for g in opt.param_groups]
        try:
            saved_groups = [len(g["params"]) for g in saved["param_groups"]]
        except (KeyError, TypeError):
            raise CheckpointError(
                f"{source}: optimizer {name!r} has no valid state_dict."
            ) from None
        if groups != saved_groups:
            raise CheckpointError(
                f"{source}: optimizer {name!r} has parameter groups of sizes {saved_groups} in "
                f"the file and {groups} in the run."
            )
        params = [p for g in opt.param_groups for p in g["params"]]
        for index, entry in saved.get("state", {}).items():
            for key, value in entry.items():
                if (
                    isinstance(value, torch.Tensor)
                    and value.ndim > 0
                    and value.shape != params[index].shape
                ):
                    raise CheckpointError(
                        f"{source}: optimizer {name!r} state {key!r} of parameter {index} has "
                        f"shape {tuple(value.shape)}, the parameter {tuple(params[index].shape)}."
                    )


def optimizer_class(opt: torch.optim.Optimizer) -> str:
    """The import path of ``opt``'s class, as files record it: ``"torch.optim.adam:Adam"``."""
    cls = type(opt)
    return f"{cls.__module__}:{cls.__qualname__}"


def _check_optimizer_class(
    name: str, opt: torch.optim.Optimizer, classes: Any, source: str
) -> None:
    """The state of one optimizer class cannot drive another (SGD has no Adam moments)."""
    saved = classes.get(name) if isinstance(classes, Mapping) else None
    if not isinstance(saved, str):
        return
    own = optimizer_class(opt)
    # The class name decides: a module that moved between torch versions is the same class.
    if saved.rpartition(":")[2] == own.rpartition(":")[2]:
        return
    raise CheckpointError(
        f"{source}: optimizer {name!r} was saved as {saved.rpartition(':')[2]} ({saved}), but "
        f"the run's is {own.rpartition(':')[2]} ({own}); the state of one optimizer class "
        "cannot be loaded into another. Use the optimizer that wrote the file, or do not "
        "restore its state (delete the AutoResume file, or restore_optimizer_state=False)."
    )


def _few(items: list[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


# -- checkpoints of a run --------------------------------------------------------------


def keyed_callbacks(callbacks: list[Any]) -> list[tuple[str, Any]]:
    """``(key, callback)`` pairs: the class name, with ``#2``, ``#3``... for repeats."""
    seen: dict[str, int] = {}
    keyed = []
    for cb in callbacks:
        name = type(cb).__name__
        seen[name] = seen.get(name, 0) + 1
        keyed.append((name if seen[name] == 1 else f"{name}#{seen[name]}", cb))
    return keyed


def capture(ctx: Context, position: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything needed to continue ``ctx``'s run exactly, as plain values.

    ``epoch`` is the number of finished epochs. ``position`` says where in the next epoch
    the checkpoint was taken (``{"epoch": e, "batch": k, "epoch_rng": ...}``); None means
    at an epoch boundary.
    """
    states = {}
    for key, cb in keyed_callbacks(ctx.callbacks):
        state = cb.state_dict() if hasattr(cb, "state_dict") else None
        if state:
            states[key] = plain(state, f"{key}.state_dict()")
    return {
        "luzwidget": {"kind": "checkpoint", "version": VERSION},
        "epoch": int(ctx.epoch if position is None else position["epoch"] - 1),
        "model": original(ctx.model).state_dict(),  # the user's module's: no DDP/compile prefix
        "optimizers": {name: opt.state_dict() for name, opt in ctx.optimizers.items()},
        "optimizer_classes": {name: optimizer_class(opt) for name, opt in ctx.optimizers.items()},
        "records": plain(ctx.records, "records"),
        "callbacks": states,
        "rng": get_rng_states(),
        "loaders": {  # a loader's own generator draws its order: part of the run's state
            "train": generator_states(ctx.train_data),
            "valid": generator_states(ctx.valid_data),
        },
        "position": plain(dict(position), "position") if position else {},
        "batch_size": batch_size_of(ctx.train_data),  # run.edit("batch_size", n) changes it
    }


def save_checkpoint(
    ctx: Context, path: PathLike, position: Mapping[str, Any] | None = None
) -> Path:
    """Write a checkpoint of ``ctx``'s run to ``path`` (atomically); return the path.

    Under torch.distributed, rank 0 writes it and every rank waits until it is there.
    """
    return write_once(lambda: capture(ctx, position), path)


def restore(
    ctx: Context,
    state: Mapping[str, Any],
    source: str,
    *,
    model: bool = True,
    optimizers: bool = True,
    records: bool = True,
    callbacks: bool = True,
    epoch: bool = True,
    rng: bool = True,
) -> None:
    """Load the chosen parts of a checkpoint into ``ctx``; check everything first.

    Raises
    ------
    CheckpointError
        Naming ``source`` and what did not match; the model is then left untouched.
    """
    weights = None
    if model:
        own = original(ctx.model)  # a file from a compiled model loads into a plain one
        weights = align_keys(state.get("model"), own)
        check_model_state(own, weights, source)
    if optimizers:
        classes = state.get("optimizer_classes")
        check_optimizer_states(ctx.optimizers, state.get("optimizers"), source, classes)
    if callbacks:
        for key, cb in keyed_callbacks(ctx.callbacks):
            saved = state.get("callbacks", {}).get(key)
            if saved is not None:
                try:
                    cb.load_state_dict(saved)
                except Exception as exc:
                    raise CheckpointError(
                        f"{source}: callback {key} could not load its state: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
    if model:
        original(ctx.model).load_state_dict(weights)
    if optimizers:
        for name, opt in ctx.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
    if records:
        ctx.records = dict(state.get("records", {}))
    if epoch:
        ctx.epoch = int(state["epoch"])
        set_batch_size(ctx, state.get("batch_size"))  # the loader's of then (older files: kept)
    if rng and state.get("rng"):
        set_rng_states(state["rng"])
    if rng:
        loaders = state.get("loaders") or {}  # files written before it was kept have none
        set_generator_states(ctx.train_data, list(loaders.get("train", [])))
        set_generator_states(ctx.valid_data, list(loaders.get("valid", [])))
