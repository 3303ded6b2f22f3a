"""Small models, data and spy callbacks shared by the tests of the built-in callbacks."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import luzwidget as lw


def make_data(n: int = 64, d: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A separable 2-class problem, drawn from its own generator (not the global RNG)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x, (x.sum(1) > 0).long()


class Net(nn.Module):
    """Linear -> ReLU -> Dropout -> Linear; dropout makes training consume the RNG."""

    def __init__(self, d: int = 4, h: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Dropout(0.2), nn.Linear(h, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class TwoOpt(nn.Module):
    """A model trained by two optimizers: 'a' for the first layer, 'b' for the second."""

    def __init__(self, d: int = 4) -> None:
        super().__init__()
        self.a = nn.Linear(d, 8)
        self.b = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))

    def set_optimizers(self, lr: float = 0.1) -> dict[str, torch.optim.Optimizer]:
        return {
            "a": torch.optim.SGD(self.a.parameters(), lr=lr),
            "b": torch.optim.SGD(self.b.parameters(), lr=lr),
        }


def make_spec(module: Any = Net, lr: float = 1e-2, **kw: Any) -> lw.Setup:
    """Net with cross-entropy and Adam."""
    return lw.setup(
        module, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam, **kw
    ).set_opt_hparams(lr=lr)


FIT = {"verbose": False, "dataloader_options": {"batch_size": 8}}


class Script(lw.Callback):
    """Log ``values[epoch - 1]`` as the metric ``name`` of ``set`` at each epoch end.

    Weight 0: after the Metrics default, before EarlyStopping / checkpoints read it.
    """

    weight = 0

    def __init__(self, values: list[float], name: str = "fake_loss", set: str = "valid") -> None:
        self.values, self.name, self.set = values, name, set

    def on_epoch_end(self, ctx: lw.Context) -> None:
        ctx.log("metrics", self.set, {self.name: self.values[ctx.epoch - 1]}, ctx.epoch)


class Snapshot(lw.Callback):
    """Copies of the model's weights at each epoch end: ``weights[epoch]``."""

    weight = 5

    def __init__(self) -> None:
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def on_epoch_end(self, ctx: lw.Context) -> None:
        self.weights[ctx.epoch] = {k: v.clone() for k, v in ctx.model.state_dict().items()}


class Events(lw.Callback):
    """The events that fired, with the epoch: ``[(event, epoch), ...]``."""

    def __init__(self, *names: str) -> None:
        self.seen: list[tuple[str, int]] = []
        for name in names:
            setattr(self, name, lambda ctx, name=name: self.seen.append((name, ctx.epoch)))


def same_weights(
    a: dict[str, torch.Tensor] | nn.Module, b: dict[str, torch.Tensor] | nn.Module
) -> bool:
    """Bit-identical state dicts."""
    sa = a.state_dict() if isinstance(a, nn.Module) else a
    sb = b.state_dict() if isinstance(b, nn.Module) else b
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class NoisyData(torch.utils.data.Dataset):
    """``(x[i] + noise, y[i])`` with noise from numpy's and Python's global RNGs.

    Training on it is reproducible only if those RNGs are saved and restored too.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        import random

        import numpy as np

        noise = 0.01 * float(np.random.normal()) + 0.01 * random.random()
        return self.x[i] + noise, self.y[i]
