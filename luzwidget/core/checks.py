"""Checks that turn a wrong setup into an error naming the argument, what it got and the fix.

They run where the thing is built (the module, the optimizer) or once per fit (the first
loss), never per batch. The original error is kept as ``__cause__``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from luzwidget.core.context import epochs_in_range
from luzwidget.core.dispatch import check_callbacks
from luzwidget.core.exceptions import ConfigError
from luzwidget.core.values import quote

__all__ = [
    "BroadcastError",
    "build_module",
    "build_optimizer",
    "check_callbacks_arg",
    "check_epochs",
    "check_opt_hparams",
    "check_target_shape",
    "checked_loss",
]


def check_opt_hparams(opt_hparams: Mapping[str, Any]) -> None:
    """Refuse an ``lr`` that is not a finite number, as ``run.set_lr`` does.

    Raises
    ------
    ConfigError
        If ``lr`` is a number but inf or nan (a tensor lr or another hparam is left to the
        optimizer, which checks it when it is built).
    """
    lr = opt_hparams.get("lr")
    if isinstance(lr, float | int) and not isinstance(lr, bool) and not math.isfinite(lr):
        raise ConfigError(
            f"set_opt_hparams(lr={lr!r}): the learning rate must be a finite number; "
            "pass e.g. set_opt_hparams(lr=1e-3)."
        )


def build_module(make: Callable[..., Any], hparams: Mapping[str, Any]) -> nn.Module:
    """``make(**hparams)``, an ``nn.Module`` class or a factory function returning one; the
    constructor's error becomes a ConfigError naming the hparams.

    Raises
    ------
    ConfigError
        If building fails, or a factory returns something that is not an ``nn.Module``.
    """
    name = getattr(make, "__name__", repr(make))
    try:
        built = make(**hparams)
    except Exception as exc:
        raise ConfigError(
            f"building {name}(**{dict(hparams)}) failed: {type(exc).__name__}: "
            f"{_first_line(exc)}. Set the constructor's arguments with .set_hparams(...)."
        ) from exc
    if not isinstance(built, nn.Module):
        raise ConfigError(
            f"setup({name}, ...): {name}(**{dict(hparams)}) returned {type(built).__name__}, "
            "not an nn.Module. A factory given to setup() must return the module to train."
        )
    return built


def build_optimizer(
    factory: Callable[..., Any], params: Iterable[Any], opt_hparams: Mapping[str, Any]
) -> Any:
    """``factory(params, **opt_hparams)``; its error becomes a ConfigError naming them."""
    name = getattr(factory, "__name__", repr(factory))
    try:
        return factory(params, **opt_hparams)
    except Exception as exc:
        raise ConfigError(
            f"building the optimizer {name}(params, **{dict(opt_hparams)}) failed: "
            f"{type(exc).__name__}: {_first_line(exc)}. Set its arguments with "
            ".set_opt_hparams(...)."
        ) from exc


def check_target_shape(loss_fn: Any, pred: Any, target: Any) -> None:
    """Refuse a target that the loss would broadcast against the prediction.

    pred ``(N, 1)`` and target ``(N,)`` with ``nn.MSELoss()``, ``F.mse_loss`` or
    ``((p - t) ** 2).mean()`` compute an ``(N, N)`` loss (torch warns at most). See
    :func:`checked_loss`, which this calls.

    Raises
    ------
    BroadcastError
        Naming both shapes, the operation and how to make them match; any other error
        of the loss is left to the loss itself.
    """
    try:
        checked_loss(loss_fn, pred, target)
    except BroadcastError:
        raise
    except Exception:
        return


class BroadcastError(ValueError):
    """The loss broadcast a tensor of the prediction against one of the target."""


def checked_loss(loss_fn: Callable[[Any, Any], Any], pred: Any, target: Any) -> Any:
    """``loss_fn(pred, target)``, watching for an operation that broadcasts a tensor of the
    prediction against one of the target into a shape larger than both (what no loss
    means to do). Any loss: ``nn.*Loss``, a function, the user's own code; tensors inside
    tuples and dicts too. Run once per loader, on its first batch: it costs one
    ``__torch_function__`` call per operation of that loss.

    Raises
    ------
    BroadcastError
        A ValueError naming both shapes, the operation and how to make them match.
    """
    watch = _Broadcasts(pred, target)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with watch:
                loss = loss_fn(pred, target)
        except Exception as exc:
            if watch.found is None:
                raise
            raise BroadcastError(_broadcast_message(loss_fn, *watch.found)) from exc
    if watch.found is not None:  # torch's "target size" warning says less: not repeated
        raise BroadcastError(_broadcast_message(loss_fn, *watch.found))
    for w in caught:  # the loss's own warnings, as they would have been shown
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return loss


class _Broadcasts(TorchFunctionMode):
    """Follows the tensors of pred and target through the operations of a loss (an
    operation on one of them alone gives a tensor of the same side) and notes the first
    that combines both sides into a larger shape."""

    def __init__(self, pred: Any, target: Any) -> None:
        super().__init__()
        # id -> (side, tensor): the tensor is kept so that its id is not reused meanwhile.
        self.side: dict[int, tuple[str, torch.Tensor]] = {}
        for name, part in (("pred", pred), ("target", target)):
            for t in _tensors(part):
                self.side.setdefault(id(t), (name, t))
        self.found: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], str] | None = None

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        if self.found is not None:
            return out
        sides: dict[str, torch.Tensor] = {}
        for t in _tensors((args, kwargs or {})):
            known = self.side.get(id(t))
            if known is not None and known[1] is t:
                sides.setdefault(known[0], t)
        if len(sides) == 2:
            self._check(sides["pred"], sides["target"], func)
        elif sides and isinstance(out, torch.Tensor):
            side = next(iter(sides))
            self.side[id(out)] = (side, out)
        return out

    def _check(self, p: torch.Tensor, t: torch.Tensor, func: Any) -> None:
        if p.shape == t.shape:
            return
        try:
            shape = torch.broadcast_shapes(p.shape, t.shape)
        except RuntimeError:
            return  # the operation itself raises, naming both sizes
        if math.prod(shape) > max(p.numel(), t.numel()):
            name = getattr(func, "__name__", str(func))
            self.found = (tuple(p.shape), tuple(t.shape), tuple(shape), name)


def _tensors(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, Mapping):
        return [t for v in x.values() for t in _tensors(v)]
    if isinstance(x, tuple | list):
        return [t for v in x for t in _tensors(v)]
    return []


def _broadcast_message(
    loss_fn: Any, p: tuple[int, ...], t: tuple[int, ...], shape: tuple[int, ...], op: str
) -> str:
    name = getattr(loss_fn, "__name__", type(loss_fn).__name__)
    fix = (
        "squeeze the prediction (pred.squeeze(-1) in forward) or give the target a last "
        "dimension of 1 (y.unsqueeze(-1) / y.reshape(-1, 1) in the data)"
        if p[:-1] == t and p[-1:] == (1,)
        else "give the target a last dimension of 1 (y.unsqueeze(-1) in the data) or squeeze "
        "the prediction's"
        if t[:-1] == p and t[-1:] == (1,)
        else "make the data's target the shape of the model's output"
    )
    return (
        f"the prediction has shape {p} and the target {t}: {name} would broadcast them to "
        f"{shape} (in {op}) and compare every prediction with every target. To fix it, {fix}."
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or ["(no message)"])[0].rstrip(".")


def check_epochs(epochs: Any) -> tuple[int, int]:
    """``epochs`` of ``fit()``: an int (max) or a pair (min, max), as ``(min, max)``."""

    def is_int(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    if is_int(epochs):
        if epochs < 0:
            raise ConfigError(f"epochs={quote(epochs)}: the number of epochs must be >= 0.")
        return 0, epochs_in_range(epochs, "epochs")
    if isinstance(epochs, tuple | list) and len(epochs) == 2 and all(map(is_int, epochs)):
        low, high = epochs
        if not 0 <= low <= high:
            raise ConfigError(
                f"epochs={tuple(epochs)}: expected (min_epochs, max_epochs) with "
                "0 <= min_epochs <= max_epochs, e.g. epochs=(5, 20)."
            )
        return low, epochs_in_range(high, "epochs: max_epochs")
    raise ConfigError(
        "epochs must be an int (max epochs) or a pair (min_epochs, max_epochs); got "
        f"{quote(epochs)}."
    )


def check_callbacks_arg(callbacks: Any) -> list[Any]:
    """``callbacks`` of ``fit()``: None, one callback or a list, each checked; as a list."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, list | tuple):
        callbacks = [callbacks]
    check_callbacks(callbacks)  # misnamed methods, bad signatures: say so now (ConfigError)
    return list(callbacks)
