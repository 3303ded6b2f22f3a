"""What tests/test_launch.py launches: an importable model, data and callbacks."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from torch import nn

import luzwidget as lw


def data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


class Slow(lw.Callback):
    """A short sleep per batch, so a test can pause the run while it trains."""

    def on_train_batch_end(self, ctx: lw.Context) -> None:
        time.sleep(0.02)


class Boom(lw.Callback):
    """Rank 1 raises at epoch 2, batch 2."""

    def on_train_batch_end(self, ctx: lw.Context) -> None:
        if ctx.rank == 1 and (ctx.epoch, ctx.iter) == (2, 2):
            raise ValueError("planted on rank 1")


class Report(lw.Callback):
    """Each rank writes FOLDER/rank<r>.json at the fit's end: its pid, records and the lr
    of every optimizer step."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.lrs: list[float] = []

    def on_train_batch_before_step(self, ctx: lw.Context) -> None:
        self.lrs.append(ctx.optimizers["opt"].param_groups[0]["lr"])

    def on_fit_end(self, ctx: lw.Context) -> None:
        out = {"pid": os.getpid(), "records": ctx.records.get("metrics", {}), "lrs": self.lrs}
        (Path(self.folder) / f"rank{ctx.rank}.json").write_text(json.dumps(out))


class FailsOnRank1(nn.Linear):
    """A model rank 1 cannot build: it fails before rank 0 serves the run."""

    def __init__(self, in_features: int, out_features: int) -> None:
        if os.environ.get("RANK") == "1":
            raise ValueError("planted: rank 1 cannot build the model")
        super().__init__(in_features, out_features)


def spec(module: type[nn.Module] = nn.Linear) -> lw.Setup:
    return (
        lw.setup(module, loss=nn.MSELoss(), optimizer=torch.optim.SGD, metrics=[lw.metrics.MAE()])
        .set_hparams(in_features=4, out_features=1)
        .set_opt_hparams(lr=0.1)
    )
