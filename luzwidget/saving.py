"""``save`` / ``load`` a fitted model, and ``save_weights`` / ``load_weights`` alone.

A fitted file holds the module's class by its import path (``"pkg.mod:Net"``) and its
hparams, the weights, each optimizer (class by import path, the names of its parameters
per group, its state) and the records. Nothing in it is code, and :func:`load` builds
only what you allow: the classes of your ``setup=``, or else classes it looks up among
the modules **already imported** (in ``sys.modules`` and their ``__dict__``: a file
cannot make Python import anything, nor run a module's ``__getattr__``), which must be
``nn.Module`` / ``Optimizer`` subclasses. The model is first built on the meta device
and its shapes compared with the file's weights, so hparams that do not match the
weights are refused before any memory is allocated.
Pass ``setup=`` to :func:`load` to rebuild from your own :func:`~luzwidget.setup`
instead: then the loss, metrics and optimizer factory are yours again, and training
continues exactly as before saving.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FunctionType
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from luzwidget.core.compiled import align_keys, original
from luzwidget.core.exceptions import CheckpointError, ConfigError
from luzwidget.fitted import Fitted
from luzwidget.module import Setup
from luzwidget.session import build_model, build_optimizers, finished_run
from luzwidget.storage.checkpoint import check_model_state, check_optimizer_states
from luzwidget.storage.files import VERSION, PathLike, plain, read, write_once

if TYPE_CHECKING:
    from luzwidget.core.accelerator import Accelerator

__all__ = ["load", "load_weights", "save", "save_weights"]


def save(fitted: Fitted, path: PathLike) -> Path:
    """Save a fitted model (weights, optimizers' state, records, class and hparams).

    Examples
    --------
    >>> lw.save(fitted, "model.pt")                      # doctest: +SKIP
    >>> again = lw.load("model.pt", setup=spec)          # doctest: +SKIP
    >>> again.predict(x)                                 # doctest: +SKIP
    """
    if not isinstance(fitted, Fitted):
        raise ConfigError(
            f"save() takes what fit() returned (a Fitted), got {type(fitted).__name__}. "
            "To save a module's weights alone use lw.save_weights(module, path)."
        )
    model = original(fitted.model)  # the user's module, not DDP's or torch.compile's wrapper
    names = {id(p): n for n, p in model.named_parameters()}
    optimizers = {}
    for key, opt in fitted.optimizers.items():
        groups = [[names.get(id(p)) for p in g["params"]] for g in opt.param_groups]
        optimizers[key] = {
            "class": _import_path(type(opt)),
            "param_names": groups if all(n for g in groups for n in g) else None,
            "state": opt.state_dict(),
        }
    hparams: Any = None
    why = ""
    if isinstance(fitted.spec.module, nn.Module):  # load() then needs setup=
        why = f"setup() was given a {type(model).__name__} instance, not its class and hparams"
    else:
        try:
            hparams = plain(fitted.hparams, "hparams")
        except CheckpointError as exc:
            why = str(exc)
    return write_once(  # under torch.distributed: written by rank 0, read after by every rank
        lambda: {
            "luzwidget": {"kind": "fitted", "version": VERSION},
            "module": _import_path(_module_maker(fitted.spec.module, model)),
            "hparams": hparams,
            "hparams_unsaved": why,
            "opt_hparams": plain(fitted.opt_hparams, "opt_hparams"),
            "model": model.state_dict(),
            "optimizers": optimizers,
            "records": plain(fitted.records, "records"),
            "epoch": int(fitted.ctx.epoch),
        },
        path,
    )


def load(
    path: PathLike, setup: Setup | None = None, accelerator: Accelerator | None = None
) -> Fitted:
    """Load what :func:`save` wrote; it can predict, evaluate and keep training.

    Parameters
    ----------
    path
        A file written by :func:`save`.
    setup
        The :func:`~luzwidget.setup` the model came from (its hparams are taken from the
        file). Without it, the module and optimizer classes are found by their import
        paths among the modules already imported (import the one defining your model
        first; nothing is imported for the file); the loss is then the module's own
        ``loss``/``step`` if it has one. A model given to ``setup()`` as an instance
        needs ``setup=``, and the weights are loaded into that instance. Either way the
        model is built on the meta device first and its shapes compared with the file's.
    accelerator
        Where to put the model (default: as ``fit`` chooses).

    Raises
    ------
    CheckpointError
        If the file is corrupt or not a luzwidget file, names a class that is not an
        imported ``nn.Module`` / ``Optimizer``, or its weights or optimizers (shapes,
        optimizer class) do not match the model.
    """
    source = repr(str(path))
    state = read(path, "fitted")
    if setup is not None and not isinstance(setup, Setup):
        raise ConfigError(f"setup must be what lw.setup() returns, got {type(setup).__name__}.")
    spec = _spec(state, setup, source)
    model = _model(spec, state, source)  # setup=lw.setup(torch.compile(net)): still compiled
    own = original(model)  # its names and keys are the user's module's, as save() wrote them
    weights = align_keys(state["model"], own)
    check_model_state(own, weights, source)
    optimizers = _optimizers(spec, own, state, setup is not None, source)
    own.load_state_dict(weights)
    return _fitted(spec, model, optimizers, state, accelerator)


def save_weights(obj: nn.Module | Fitted, path: PathLike) -> Path:
    """Save the model's ``state_dict`` alone (a plain file ``torch.load`` reads anywhere)."""
    model = original(_module_of(obj, "save_weights"))  # no DDP or torch.compile prefix
    return write_once(model.state_dict, path)


def load_weights(obj: nn.Module | Fitted, path: PathLike) -> nn.Module:
    """Load weights into ``obj``'s model (in place) and return the model.

    ``path`` may hold weights alone, a fitted model or a checkpoint. The keys and shapes
    are checked first: on a mismatch nothing changes. Keys that differ from the model's
    only by torch.compile's ``_orig_mod.`` (``torch.save(compiled.state_dict())``, or a
    compiled ``obj``) are matched to the model's.
    """
    model: nn.Module = original(_module_of(obj, "load_weights"))
    state = read(path)
    if isinstance(state, dict) and "luzwidget" in state:
        state = state.get("model")
    state = align_keys(state, model)
    check_model_state(model, state, repr(str(path)))
    model.load_state_dict(state)
    return model


# -- helpers ---------------------------------------------------------------------------


def _module_of(obj: Any, fn: str) -> nn.Module:
    if isinstance(obj, Fitted):
        return obj.model
    if isinstance(obj, nn.Module):
        return obj
    raise ConfigError(f"{fn}() takes an nn.Module or a Fitted, got {type(obj).__name__}.")


def _import_path(cls: Any) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _module_maker(given: Any, model: nn.Module) -> Any:
    """What builds the module again from the hparams: the factory function given to
    ``setup()`` (e.g. ``resnet18``), else the module's class."""
    if callable(given) and not isinstance(given, type | nn.Module):
        return given
    return type(model)


def _resolve(path: Any, base: type, what: str, source: str) -> Any:
    """The class at ``"module:Qual.Name"``, found among the modules already imported.

    Nothing is imported and no ``__getattr__`` runs: the module is taken from
    ``sys.modules`` and each name from the ``__dict__`` of the module or class, so a path
    such as ``"torch:_dynamo.X"`` cannot make torch import a submodule.
    """
    if not isinstance(path, str) or path.count(":") != 1:
        raise CheckpointError(
            f"{source}: the {what} is {path!r}, not an import path 'module:Class'; the file is "
            "not a luzwidget file, or was damaged. Pass setup= to load()."
        )
    module_name, _, qualname = path.partition(":")
    found: Any = sys.modules.get(module_name)
    hint = f"import {module_name} first, or pass setup= to load()"
    if found is None:
        raise CheckpointError(
            f"{source}: the {what} is {path}, but module {module_name!r} is not imported; {hint}."
        )
    for part in qualname.split("."):
        namespace = getattr(found, "__dict__", None)
        found = namespace.get(part) if isinstance(namespace, Mapping) else None
    if base is nn.Module and isinstance(found, FunctionType):
        return found  # a factory function given to setup()
    if not (isinstance(found, type) and issubclass(found, base)):
        raise CheckpointError(
            f"{source}: the {what} {path} is not found (a class or function defined inside a "
            f"function, or a lambda, cannot be looked up), or is not a {base.__name__}; {hint}."
        )
    return found


def _spec(state: dict[str, Any], setup: Setup | None, source: str) -> Setup:
    hparams = state.get("hparams")
    if hparams is None and setup is None:
        raise CheckpointError(
            f"{source}: the module's constructor arguments were not stored "
            f"({state.get('hparams_unsaved')}); pass the setup it came from: "
            "lw.load(path, setup=lw.setup(...))."
        )
    for name, value in (("hparams", hparams), ("opt_hparams", state.get("opt_hparams"))):
        if value is not None and not (isinstance(value, dict) and all(map(_is_name, value))):
            raise CheckpointError(
                f"{source}: its {name} are {type(value).__name__} {value!r:.80}, not a dict of "
                "keyword arguments; the file was not written by lw.save()."
            )
    if setup is None:
        module = _resolve(state.get("module"), nn.Module, "module class", source)
        setup = Setup(module, None, None, None, None)
    spec = setup
    if not isinstance(spec.module, nn.Module) and hparams is not None:
        spec = spec.set_hparams(**hparams)
    if not isinstance(spec.optimizer, torch.optim.Optimizer):
        spec = spec.set_opt_hparams(**(state.get("opt_hparams") or {}))
    return spec


def _is_name(key: Any) -> bool:
    return isinstance(key, str)


def _model(spec: Setup, state: dict[str, Any], source: str) -> nn.Module:
    """Build the model, after checking its shapes against the file on the meta device.

    The hparams come from the file: a model whose weights would not fit the file's is
    refused before any memory is allocated for it. A constructor that cannot run on the
    meta device (it reads tensor values) is built for real and checked after.
    """
    if not isinstance(spec.module, nn.Module):
        try:
            with torch.device("meta"):
                shell = build_model(spec)
        except Exception:  # the real build below reports the error, or it needs real tensors
            shell = None
        if shell is not None:
            check_model_state(shell, align_keys(state.get("model"), shell), source)
    try:
        return build_model(spec)
    except ConfigError as exc:
        raise CheckpointError(f"{source}: could not rebuild the model: {exc}") from exc


def _optimizers(
    spec: Setup, model: nn.Module, state: dict[str, Any], own: bool, source: str
) -> dict[str, torch.optim.Optimizer]:
    saved = state["optimizers"]
    if own:
        optimizers = build_optimizers(spec, model)
    else:
        named = dict(model.named_parameters())
        optimizers = {}
        for key, entry in saved.items():
            cls = _resolve(entry["class"], torch.optim.Optimizer, "optimizer class", source)
            if entry["param_names"] is None:
                raise CheckpointError(
                    f"{source}: optimizer {key!r} holds parameters that are not the model's; "
                    "pass setup= to load()."
                )
            unknown = [n for names in entry["param_names"] for n in names if n not in named]
            if unknown:
                raise CheckpointError(
                    f"{source}: optimizer {key!r} names parameters the model lacks: "
                    f"{unknown[:5]}; pass setup= to load()."
                )
            groups = [
                {
                    **{k: v for k, v in g.items() if k != "params"},
                    "params": [named[n] for n in names],
                }
                for g, names in zip(
                    entry["state"]["param_groups"], entry["param_names"], strict=True
                )
            ]
            optimizers[key] = cls(groups)
    states = {key: entry["state"] for key, entry in saved.items()}
    classes = {key: entry.get("class") for key, entry in saved.items()}
    check_optimizer_states(optimizers, states, source, classes)
    for key, opt in optimizers.items():
        opt.load_state_dict(states[key])
    return optimizers


def _fitted(
    spec: Setup,
    model: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
    accelerator: Accelerator | None,
) -> Fitted:
    run = finished_run(
        spec,
        model,
        optimizers,
        dict(state["records"]),
        int(state["epoch"]),
        accelerator,
        finish=functools.partial(Fitted, spec),
    )
    fitted: Fitted = run.result  # finish=Fitted(spec, run)
    return fitted
