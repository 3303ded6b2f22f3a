"""torch.compile: the user's module inside the wrapper, its names, and eager runs while hooked.

A model reaches a run compiled in one of two ways, both torch's own:

- ``torch.compile(model)`` returns an ``OptimizedModule`` that holds ``model`` as
  ``_orig_mod``: its parameter names and ``state_dict`` keys gain the prefix
  ``_orig_mod.`` (and a compiled submodule puts ``_orig_mod`` in the middle of them);
- ``model.compile()`` compiles in place (``model._compiled_call_impl``), names unchanged.

:func:`original` is the user's module through DDP and compile wrappers, and
:func:`named_modules` / :func:`named_parameters` give its parts under their own names
(no ``_orig_mod``): what ``run.layers()``, ``run.activations()``, the non-finite check and
every file use, so a file saved from a compiled model loads into a plain one and back
(:func:`align_keys` also reads files whose keys still carry the prefix).

Forward hooks added after a compiled forward ran once are not seen by it: dynamo does not
guard on hooks (``torch._dynamo.config.skip_nnmodule_hook_guards``) and keeps running the
graph it traced, hooks or not. So while luzwidget's own hooks watch a model
(``activations()``, ``breakpoints.nonfinite``), :func:`run_eagerly` has its compiled parts
call the original modules directly; when the hooks go, the compiled graph runs again, as
traced (nothing is recompiled, and no hook is ever traced into it).
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from luzwidget.core.distributed import unwrap

__all__ = [
    "align_keys",
    "clean_name",
    "compiled_parts",
    "is_compiled",
    "named_modules",
    "named_parameters",
    "original",
    "run_eagerly",
]

WRAPPED = "_orig_mod"
"""The attribute (and name component) under which ``torch.compile`` keeps the module."""


def _optimized_module() -> type | None:
    """torch's ``OptimizedModule`` class, or None while dynamo is not imported (nothing
    can be compiled then, and importing dynamo here would cost every run a second)."""
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")
    found = getattr(eval_frame, "OptimizedModule", None)
    return found if isinstance(found, type) else None


def _wrapper(module: Any) -> bool:
    cls = _optimized_module()
    return cls is not None and isinstance(module, cls)


def original(model: Any) -> Any:
    """The user's module inside DistributedDataParallel and ``torch.compile`` wrappers (in
    any order); ``model`` itself when it is not wrapped."""
    while True:
        inner = unwrap(model)
        if _wrapper(inner):
            inner = getattr(inner, WRAPPED)
        if inner is model:
            return model
        model = inner


def clean_name(name: str) -> str:
    """``name`` without torch.compile's ``_orig_mod`` components (``"enc._orig_mod.0"``
    is ``"enc.0"``)."""
    return ".".join(part for part in name.split(".") if part != WRAPPED)


def named_modules(model: Any) -> Iterator[tuple[str, nn.Module]]:
    """``(name, module)`` of the user's module and its parts, as it names them: compile
    wrappers are left out (the module each holds comes next, under the same name)."""
    for name, module in original(model).named_modules():
        if not _wrapper(module):
            yield clean_name(name), module


def named_parameters(model: Any) -> Iterator[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` of the user's module, named without ``_orig_mod``."""
    for name, p in original(model).named_parameters():
        yield clean_name(name), p


def compiled_parts(model: Any) -> list[nn.Module]:
    """The modules in ``model`` (wrappers included) whose call runs compiled code."""
    if not isinstance(model, nn.Module):
        return []
    return [
        m for m in model.modules() if _wrapper(m) or vars(m).get("_compiled_call_impl") is not None
    ]


def is_compiled(model: Any) -> bool:
    """True when some part of ``model`` runs compiled (``torch.compile`` / ``.compile()``)."""
    return bool(compiled_parts(model))


# -- eager runs while hooks watch ---------------------------------------------------------

_held: weakref.WeakKeyDictionary[nn.Module, tuple[int, str, Any]] = weakref.WeakKeyDictionary()
"""``compiled module -> (holds, attribute swapped, its compiled value)``."""


def run_eagerly(model: Any) -> Callable[[], None]:
    """Have every compiled part of ``model`` call its original module, uncompiled, until
    the returned function is called (holds are counted: the last release restores).

    Call both on the thread that drives the run, between forward passes. A model with
    nothing compiled is left alone (the release does nothing).
    """
    parts = compiled_parts(model)
    for part in parts:
        _hold(part)
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            for part in parts:
                _release(part)

    return release


def _hold(part: nn.Module) -> None:
    entry = _held.get(part)
    if entry is not None:
        _held[part] = (entry[0] + 1, entry[1], entry[2])
        return
    if _wrapper(part):  # OptimizedModule: forward is the compiled call of _orig_mod
        attribute, eager = "forward", getattr(part, WRAPPED).__call__
    else:  # module.compile(): _wrapped_call_impl calls _compiled_call_impl when set
        attribute, eager = "_compiled_call_impl", None
    _held[part] = (1, attribute, vars(part)[attribute])
    object.__setattr__(part, attribute, eager)


def _release(part: nn.Module) -> None:
    entry = _held.get(part)
    if entry is None:
        return
    holds, attribute, compiled = entry
    if holds > 1:
        _held[part] = (holds - 1, attribute, compiled)
        return
    del _held[part]
    object.__setattr__(part, attribute, compiled)


# -- file keys ----------------------------------------------------------------------------


def align_keys(state: Any, model: nn.Module) -> Any:
    """``state`` with its keys renamed to ``model``'s where they differ only by
    torch.compile's ``_orig_mod`` components (a file from a compiled model loaded into a
    plain one, or the other way round); otherwise ``state`` unchanged."""
    if not isinstance(state, Mapping):
        return state
    own = model.state_dict().keys()
    if own == state.keys():
        return state
    theirs = {clean_name(k): k for k in state}
    ours = {clean_name(k): k for k in own}
    if len(theirs) != len(state) or len(ours) != len(own) or theirs.keys() != ours.keys():
        return state  # not a compile difference: the shape check names what is wrong
    values: dict[str, torch.Tensor] = {ours[c]: state[k] for c, k in theirs.items()}
    return values
