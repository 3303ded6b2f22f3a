"""Shared helpers for the headless core tests: tiny models, deterministic data, a recorder.

``Recorder`` follows pytorch-ignite's ``RecordedEngine``: it overrides every ``on_<event>``
method and records ``(epoch, iter, event)``, so tests assert exact event sequences.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

import luzwidget as lw
from luzwidget import Event

__all__ = [
    "MLP",
    "E",
    "Recorder",
    "SilentStep",
    "batch_events",
    "fit_events",
    "make_data",
    "make_spec",
    "observable",
    "params_equal",
    "snapshot",
    "state_equal",
    "valid_events",
]

E = Event


class MLP(nn.Module):
    """in_features -> hidden -> out, with optional Dropout (so runs consume RNG)."""

    def __init__(
        self, in_features: int = 4, hidden: int = 8, out: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_features, hidden), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(hidden, out))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SilentStep(MLP):
    """A module with its own step (MSE, one optimizer ``"opt"``) that fires no inner events."""

    def step(self, ctx: lw.Context) -> None:
        ctx.pred = self(ctx.input)
        loss = nn.functional.mse_loss(ctx.pred, ctx.target)
        if ctx.training:
            opt = ctx.optimizers["opt"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        ctx.loss = loss.detach()


def make_data(
    n: int = 32, in_features: int = 4, out: int = 1, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: float32 inputs and a noisy linear target, the same for a given seed."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, in_features, generator=g)
    w = torch.randn(in_features, out, generator=g)
    y = x @ w + 0.1 * torch.randn(n, out, generator=g)
    return x, y


def make_spec(
    module: Any = MLP,
    loss: Any = None,
    optimizer: Any = torch.optim.SGD,
    lr: float = 0.05,
    metrics: Any = None,
    **hparams: Any,
) -> lw.Setup:
    """``setup(MLP, MSELoss, SGD).set_hparams(**hparams).set_opt_hparams(lr=lr)``."""
    spec = lw.setup(
        module, loss=nn.MSELoss() if loss is None else loss, optimizer=optimizer, metrics=metrics
    )
    if hparams:
        spec = spec.set_hparams(**hparams)
    return spec.set_opt_hparams(lr=lr) if optimizer is not None else spec


def _recording(event: Event) -> Callable[[Recorder, lw.Context], None]:
    def method(self: Recorder, ctx: lw.Context) -> None:
        self.record(ctx, event)

    method.__name__ = event.value
    return method


class Recorder(lw.Callback):
    """Records ``(epoch, iter, event)`` for every event it sees.

    Also keeps, per call, ``grad_enabled`` (torch's grad mode inside the callback),
    ``training`` (``ctx.training``) and ``opt_nm``. ``hooks`` maps an event to a function
    ``f(ctx)`` called after recording (to raise, pause, ...).
    """

    def __init__(self, hooks: dict[Event, Callable[[lw.Context], Any]] | None = None) -> None:
        self.calls: list[tuple[int, Any, Event]] = []
        self.grad_enabled: list[bool] = []
        self.training: list[bool] = []
        self.opt_nm: list[Any] = []
        self.hooks = dict(hooks or {})

    def record(self, ctx: lw.Context, event: Event) -> None:
        self.calls.append((ctx.epoch, ctx.iter, event))
        self.grad_enabled.append(torch.is_grad_enabled())
        self.training.append(ctx.training)
        self.opt_nm.append(ctx.opt_nm)
        hook = self.hooks.get(event)
        if hook is not None:
            hook(ctx)

    @property
    def events(self) -> list[Event]:
        """Just the events, in order."""
        return [event for _, _, event in self.calls]

    def count(self, event: Event) -> int:
        return sum(1 for _, _, e in self.calls if e is event)

    # one explicit override per event, as ignite's RecordedEngine does
    on_fit_begin = _recording(E.on_fit_begin)
    on_epoch_begin = _recording(E.on_epoch_begin)
    on_train_begin = _recording(E.on_train_begin)
    on_train_batch_begin = _recording(E.on_train_batch_begin)
    on_train_batch_after_pred = _recording(E.on_train_batch_after_pred)
    on_train_batch_after_loss = _recording(E.on_train_batch_after_loss)
    on_train_batch_before_backward = _recording(E.on_train_batch_before_backward)
    on_train_batch_before_step = _recording(E.on_train_batch_before_step)
    on_train_batch_after_step = _recording(E.on_train_batch_after_step)
    on_train_batch_end = _recording(E.on_train_batch_end)
    on_train_end = _recording(E.on_train_end)
    on_valid_begin = _recording(E.on_valid_begin)
    on_valid_batch_begin = _recording(E.on_valid_batch_begin)
    on_valid_batch_after_pred = _recording(E.on_valid_batch_after_pred)
    on_valid_batch_after_loss = _recording(E.on_valid_batch_after_loss)
    on_valid_batch_end = _recording(E.on_valid_batch_end)
    on_valid_end = _recording(E.on_valid_end)
    on_epoch_end = _recording(E.on_epoch_end)
    on_fit_end = _recording(E.on_fit_end)
    on_early_stopping = _recording(E.on_early_stopping)
    on_interrupt = _recording(E.on_interrupt)
    on_predict_begin = _recording(E.on_predict_begin)
    on_predict_batch_begin = _recording(E.on_predict_batch_begin)
    on_predict_batch_end = _recording(E.on_predict_batch_end)
    on_predict_end = _recording(E.on_predict_end)


assert {e.value for e in Event} <= {n for n in vars(Recorder) if n.startswith("on_")}, (
    "Recorder must override every event"
)


# -- expected sequences --------------------------------------------------------------------

_TRAIN_INNER = (
    E.on_train_batch_after_pred,
    E.on_train_batch_after_loss,
    E.on_train_batch_before_backward,
    E.on_train_batch_before_step,
    E.on_train_batch_after_step,
)


def batch_events(epoch: int, it: int, n_opts: int = 1) -> list[tuple[int, int, Event]]:
    """The events of one training batch with the default step and ``n_opts`` optimizers."""
    out = [(epoch, it, E.on_train_batch_begin)]
    for _ in range(n_opts):
        out += [(epoch, it, e) for e in _TRAIN_INNER]
    out.append((epoch, it, E.on_train_batch_end))
    return out


def valid_events(
    epoch: int, n_valid: int, n_opts: int = 1, last_train_iter: Any = 0
) -> list[tuple[int, Any, Event]]:
    """``on_valid_begin`` .. ``on_valid_end`` for ``n_valid`` batches."""
    out: list[tuple[int, Any, Event]] = [(epoch, last_train_iter, E.on_valid_begin)]
    for it in range(1, n_valid + 1):
        out.append((epoch, it, E.on_valid_batch_begin))
        for _ in range(n_opts):
            out += [
                (epoch, it, E.on_valid_batch_after_pred),
                (epoch, it, E.on_valid_batch_after_loss),
            ]
        out.append((epoch, it, E.on_valid_batch_end))
    out.append((epoch, n_valid, E.on_valid_end))
    return out


def fit_events(
    epochs: int, n_train: int, n_valid: int = 0, n_opts: int = 1, first_epoch: int = 1
) -> list[tuple[int, Any, Event]]:
    """Every ``(epoch, iter, event)`` of a fit, as luz orders them.

    ``iter`` is 0 at ``on_epoch_begin``/``on_train_begin`` (luz resets it each epoch), the
    batch index inside a loop, and the last index of the loop just run at its end.
    """
    out: list[tuple[int, Any, Event]] = [(first_epoch - 1, 0, E.on_fit_begin)]
    last: Any = 0
    for epoch in range(first_epoch, first_epoch + epochs):
        out += [(epoch, 0, E.on_epoch_begin), (epoch, 0, E.on_train_begin)]
        for it in range(1, n_train + 1):
            out += batch_events(epoch, it, n_opts)
        out.append((epoch, n_train, E.on_train_end))
        last = n_train
        if n_valid:
            out += valid_events(epoch, n_valid, n_opts, last_train_iter=n_train)
            last = n_valid
        out.append((epoch, last, E.on_epoch_end))
    out.append((first_epoch - 1 + epochs, last, E.on_fit_end))
    return out


# -- comparing models ------------------------------------------------------------------------


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``model``'s state_dict."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """True if two state dicts hold bit-identical tensors under the same keys."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def params_equal(a: nn.Module, b: nn.Module) -> bool:
    """True if every parameter and buffer of ``a`` equals ``b``'s bit for bit."""
    return state_equal(snapshot(a), snapshot(b))


def batches(x: torch.Tensor, y: torch.Tensor | None, size: int) -> list[Any]:
    """``x`` (and ``y``) cut into a list of ready batches."""
    out: list[Any] = []
    for i in range(0, len(x), size):
        out.append(x[i : i + size] if y is None else (x[i : i + size], y[i : i + size]))
    return out


def take(it: Iterable[Any], n: int) -> list[Any]:
    """The first ``n`` items of ``it``."""
    out = []
    iterator: Iterator[Any] = iter(it)
    for _ in range(n):
        out.append(next(iterator))
    return out


# -- what a refused call must leave as it was -----------------------------------------------


def observable(run: lw.Run) -> dict[str, Any]:
    """Everything a call on ``run`` could touch, as comparable plain values: the run's state,
    every context field, the weights, every optimizer's state_dict, the breakpoints (all of
    their attributes, ``watch`` included, and what they answer), the commands queued, the
    listeners, the features and the snapshots. A refused call leaves ``observable(run)`` equal."""
    ctx, bps, driver = run.ctx, run.breakpoints, run._driver
    return _plain(
        {
            "run": {
                name: getattr(run, name)
                for name in ("state", "reason", "event", "n_events", "interrupted", "notice")
            },
            "error": repr(run.error),
            "ctx": {name: getattr(ctx, name) for name in sorted(ctx.trait_names())},
            "weights": ctx.model.state_dict() if ctx.model is not None else None,
            "optimizers": {name: opt.state_dict() for name, opt in ctx.optimizers.items()},
            "breakpoints": {
                **vars(bps),
                "events": bps.events,
                "nonfinite_loss": bps.nonfinite_loss,
                "nonfinite": bps.nonfinite,
            },
            "queued": list(driver.boundary.inbox),
            "listeners": list(driver.listeners),
            "features": dict(vars(run.features)),
            "snapshots": list(run.snapshots),
        }
    )


def _plain(value: Any) -> Any:
    """Tensors by their bytes, containers item by item, anything else by type and identity
    (so a field replaced by another object differs, a field mutated in place does not)."""
    if value is None or isinstance(value, bool | int | float | str | Event):
        return value
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous()
        return ("tensor", str(flat.dtype), tuple(flat.shape), flat.numpy().tobytes())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(repr(v) for v in value)
    return (type(value).__qualname__, id(value))
