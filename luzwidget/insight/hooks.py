"""Forward hooks on every module of a run's model, put in and taken out together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from luzwidget.core.callback import run_bound
from luzwidget.core.compiled import named_modules, run_eagerly
from luzwidget.insight.stats import ROOT

__all__ = ["Hook", "ModuleHooks"]

Hook = Callable[[nn.Module, Any, Any], None]
"""A forward hook: ``hook(module, args, output)``."""


class ModuleHooks:
    """A forward hook on each of a model's modules, named as the user names them (the model
    itself is ``(model)``), and the eager hold a compiled model needs while they are on (a
    graph compiled before would not call hooks added after: :func:`run_eagerly`).

    Attributes
    ----------
    handles : list
        The hooks installed now (empty while off).
    """

    def __init__(self) -> None:
        self.handles: list[Any] = []
        self._release: Callable[[], None] | None = None

    def install(self, model: nn.Module, make: Callable[[str], Hook]) -> None:
        """Hook every module with ``make(name)``; nothing if hooks are in already."""
        if self.handles:
            return
        for name, module in named_modules(model):  # the user's modules, as they name them
            self.handles.append(module.register_forward_hook(run_bound(make(name or ROOT))))
        self._release = run_eagerly(model)

    def remove(self) -> None:
        """Take every hook out (and let a compiled model run its graph again)."""
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        release, self._release = self._release, None
        if release is not None:
            release()
