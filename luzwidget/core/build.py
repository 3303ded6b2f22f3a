"""Every Context is built here: its fields, its engine, and the module's own ``step``.

The composition root (:mod:`luzwidget.session`) and branches (:mod:`luzwidget.travel`)
build contexts through :func:`make_context`, so a context never lacks its engine.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from torch import nn

from luzwidget.core.accelerator import Accelerator
from luzwidget.core.context import Context
from luzwidget.core.distributed import unwrap
from luzwidget.core.engine import Engine
from luzwidget.core.exceptions import ConfigError

__all__ = ["custom_step", "make_context"]


def make_context(
    model: nn.Module, accelerator: Accelerator | None, callbacks: list[Any], **fields: Any
) -> Context:
    """Every Context is built here: its fields, the module's own ``step`` bound to it (if
    it has one), and its :class:`~luzwidget.core.engine.Engine`."""
    if accelerator is not None:
        fields.setdefault("device", accelerator.device)
        fields.setdefault("rank", accelerator.rank)
        fields.setdefault("world_size", accelerator.world_size)
    ctx = Context(accelerator=accelerator, model=model, callbacks=callbacks, **fields)
    Engine(ctx)
    step = custom_step(unwrap(model))  # under DDP, the user's module inside the wrapper
    if step is not None:
        ctx.step = functools.partial(step, ctx)
    return ctx


def custom_step(model: nn.Module) -> Any:
    """The module's own ``step(self, ctx)``, checked to take the context; None without one."""
    step = getattr(model, "step", None)
    if not callable(step):
        return None
    try:
        inspect.signature(step).bind(None)
    except TypeError:
        raise ConfigError(
            f"{type(model).__name__}.step must take the context: def step(self, ctx): ..."
        ) from None
    return step
