"""A luzwidget training script for tests/parallel/test_distributed.py, under torchrun (or alone).

usage: python -m torch.distributed.run ... tests/jobs/dist_job.py MODE OUT [STATE]

MODE is one of:

- ``train``: an ordinary ``fit()`` (a linear regression, 64 samples, batch 8 per rank, no
  shuffling); each rank writes ``OUT/rank<r>.pt`` with its weights, records and what it saw;
- ``steer``: ``run()`` driven by rank 0, which posts ``set_lr(0.05)`` and a pause from a
  callback at epoch 1, batch 1, then steps one batch and resumes; each rank records the lr
  it used at every batch and where the agreed commands were applied;
- ``kill``: ``train`` with ``AutoResume(STATE)``; rank 1 kills itself (SIGKILL) at epoch 2,
  batch 2 the first time (torchrun restarts the group);
- ``breakpoint``: rank 0 adds a breakpoint at ``on_valid_begin`` from a callback at epoch 1,
  batch 1, resumes to it, clears it and resumes to the end;
- ``error``: rank 1's callback raises at epoch 1, batch 2;
- ``tensors`` / ``loader``: ``train`` shuffled, on the tensors (batched by index) or on
  DataLoaders the script builds (sharded with a DistributedSampler): the same batches;
- ``hang``: rank 1 hangs (SIGSTOP) at epoch 1, batch 2; rank 0's collectives time out
  after 3 s and its ``fit()`` raises: it must exit 1, never abort. Every rank writes
  ``OUT/threads<r>.json``: the luzwidget threads still alive when the interpreter exits.

With one process (no torchrun) ``train`` uses batch 16: the same global batches.
"""

from __future__ import annotations

import atexit
import faulthandler
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import luzwidget as lw
from luzwidget.callbacks import AutoResume
from luzwidget.parallel.lockstep import Lockstep


def data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


class Watch(lw.Callback):
    """Records the lr each optimizer step uses; rank 0 posts commands in ``steer`` mode."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.lrs: list[list[float]] = []  # [epoch, batch, lr]
        self.run: Any = None

    def on_train_batch_before_step(self, ctx: lw.Context) -> None:
        self.lrs.append([ctx.epoch, ctx.iter, ctx.optimizers["opt"].param_groups[0]["lr"]])

    def on_train_batch_end(self, ctx: lw.Context) -> None:
        where = (ctx.epoch, ctx.iter)
        if self.mode == "steer" and ctx.rank == 0 and where == (1, 1):
            self.run.set_lr(0.05)
            self.run.pause("paused by the test")
        if self.mode == "breakpoint" and ctx.rank == 0 and where == (1, 1):
            self.run.breakpoints.add("on_valid_begin")  # set on rank 0 while it trains
        if self.mode == "error" and ctx.rank == 1 and where == (1, 2):
            raise ValueError("planted on rank 1")
        if self.mode == "hang" and ctx.rank == 1 and where == (1, 2):
            os.kill(os.getpid(), signal.SIGSTOP)  # hung: torchrun kills it once rank 0 exited
        first = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        if self.mode == "kill" and ctx.rank == 1 and where == (2, 2) and first:
            os.kill(os.getpid(), signal.SIGKILL)


def main(mode: str, out: str, state: str = "") -> None:
    torch.manual_seed(0)
    rank, size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    spec = (
        lw.setup(
            nn.Linear, loss=nn.MSELoss(), optimizer=torch.optim.SGD, metrics=[lw.metrics.MAE()]
        )
        .set_hparams(in_features=4, out_features=1)
        .set_opt_hparams(lr=0.1)
    )
    watch = Watch(mode)
    callbacks: list[Any] = [watch]
    if mode == "kill":
        callbacks.append(AutoResume(state))
    options = {"batch_size": 16 // size, "shuffle": mode in ("tensors", "loader")}
    args: tuple[Any, ...] = (data(64, 0),)
    kwargs: dict[str, Any] = {
        "epochs": 3,
        "valid_data": data(32, 1),
        "callbacks": callbacks,
        "verbose": False,
        "dataloader_options": options,
    }
    if mode == "loader":
        args = (DataLoader(TensorDataset(*args[0]), **options),)
        kwargs["valid_data"] = DataLoader(TensorDataset(*data(32, 1)), batch_size=16 // size)
        del kwargs["dataloader_options"]
    if mode == "hang":
        kwargs["accelerator"] = lw.Accelerator(cpu=True, timeout_s=3)
    result: dict[str, Any] = {"rank": rank, "world_size": size}
    if mode == "breakpoint":
        run = spec.run(*args, **kwargs)
        watch.run = run
        run.resume()  # rank 0: to the breakpoint; the others: to the end, in step
        if rank == 0:
            result["paused"] = [run.reason, run.ctx.epoch, run.ctx.iter]
            run.breakpoints.clear()
            run.resume()
        ctx, model = run.ctx, run.ctx.model
    elif mode == "steer":
        run = spec.run(*args, **kwargs)
        watch.run = run
        run.resume()  # to the pause (posted at batch 1, applied at an agreed batch)
        if rank == 0:
            result["paused"] = [run.reason, run.ctx.epoch, run.ctx.iter]
            run.step("batch")
            result["stepped"] = [run.reason, run.ctx.epoch, run.ctx.iter]
            run.resume()
        ctx = run.ctx
        model = ctx.model
    else:
        fitted = spec.fit(*args, **kwargs)
        ctx = fitted.ctx
        model = fitted.model
        result["predicted"] = len(fitted.predict(data(64, 0)[0]))  # every rank: the whole data
    lockstep = next((cb for cb in ctx.callbacks if isinstance(cb, Lockstep)), None)
    result.update(
        state=str(run.state) if mode in ("steer", "breakpoint") else "done",
        ddp=type(model).__name__,
        loader=type(ctx.train_data).__name__,
        ctx_rank=ctx.rank,
        ctx_world_size=ctx.world_size,
        lrs=watch.lrs,
        seen=[] if lockstep is None else lockstep.seen,
        records=ctx.records["metrics"],
    )
    inner = getattr(model, "module", model)
    torch.save(
        {k: v.detach().clone() for k, v in inner.state_dict().items()}, Path(out) / f"rank{rank}.pt"
    )
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(result))


def _threads_at_exit(out: str) -> None:
    """Registered first, so run last at exit: which luzwidget threads still run then."""
    names = sorted(t.name for t in threading.enumerate() if t.name.startswith("luzwidget"))
    rank = os.environ.get("RANK", "0")
    (Path(out) / f"threads{rank}.json").write_text(json.dumps(names))


if __name__ == "__main__":
    atexit.register(_threads_at_exit, sys.argv[2])
    faulthandler.enable(all_threads=True)  # a crash (SIGABRT) shows every thread
    faulthandler.dump_traceback_later(120, exit=True)  # a hang shows where, then ends
    main(*sys.argv[1:])
