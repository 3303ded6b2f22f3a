"""A job for tests/parallel/test_sentinel_drift.py, under torchrun (2 processes, gloo).

usage: python -m torch.distributed.run ... tests/jobs/drift_job.py OUT

A data-parallel linear regression whose rank 1 changes a weight on its own at epoch 1,
batch 2 (what a rank that stepped alone, or missed a synchronisation, looks like). The
sentinel compares the ranks' weights after every optimizer step (``rank_every = 1``).
Every rank writes ``OUT/rank<r>.json``: where its run paused and why, its findings.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

import luzwidget as lw
from luzwidget.core.compiled import original


def data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])


class Drift(lw.Callback):
    """Rank 1 adds 0.5 to one weight at epoch 1, batch 2, outside any synchronisation."""

    def on_train_batch_end(self, ctx: lw.Context) -> None:
        if ctx.rank == 1 and (ctx.epoch, ctx.iter) == (1, 2):
            original(ctx.model).weight[0, 0] += 0.5


def main(out: str) -> None:
    torch.manual_seed(0)
    rank = int(os.environ.get("RANK", "0"))
    spec = (
        lw.setup(nn.Linear, loss=nn.MSELoss(), optimizer=torch.optim.SGD)
        .set_hparams(in_features=4, out_features=1)
        .set_opt_hparams(lr=0.1)
    )
    options = {"batch_size": 8, "shuffle": False}
    run = spec.run(data(64), 2, callbacks=[Drift()], verbose=False, dataloader_options=options)
    sentinel = run.breakpoints.sentinel
    sentinel.rank_every = 1
    run.resume()  # rank 0: to the pause at the drift; the others: to the end, in step
    result = {
        "state": str(run.state),
        "reason": run.reason,
        "where": [run.ctx.epoch, run.ctx.iter],
        "findings": [[f.check, f.culprit[1], f.epoch, f.batch] for f in sentinel.findings],
    }
    if rank == 0:
        run.resume()  # on to the end (the check said it once)
    result["end"] = str(run.state)
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    faulthandler.dump_traceback_later(120, exit=True)  # a hang shows where, then ends
    main(*sys.argv[1:])
