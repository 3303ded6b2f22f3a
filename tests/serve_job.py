"""A training script served to notebooks, for tests/test_remote*.py and the kernel tests.

usage: python serve_job.py OUT_DIR TOKEN [FAIL]

A blocking ``fit()`` of a one-weight model over ready batches (slowed to ~500 batches/s so
it trains for as long as a test needs and leaves the CPU to others), with
``Serve(port=0, token=TOKEN)``. Once serving, it writes the address to OUT_DIR/address.
With FAIL, a callback raises at epoch 2, batch 5 while the file OUT_DIR/fail exists (the
test "fixes" the cause by deleting it, then retries). At the end it writes OUT_DIR/done
with the final epoch.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch import nn

import luzwidget as lw


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w


class Slow(lw.Callback):
    """A short sleep per batch: a long run that leaves the CPU to the tests."""

    def on_train_batch_end(self, ctx: lw.Context) -> None:
        time.sleep(0.002)


class Boom(lw.Callback):
    """Raises at epoch 2, batch 5 while ``flag`` exists."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def on_train_batch_end(self, ctx: lw.Context) -> None:
        if self.flag.exists() and (ctx.epoch, ctx.iter) == (2, 5):
            raise RuntimeError("boom at batch 5")


class WriteAddress(lw.Callback):
    """After Serve started (weight 1000): write where it serves."""

    weight = 2000

    def __init__(self, serve: lw.callbacks.Serve, out: Path) -> None:
        self.serve, self.out = serve, out

    def on_fit_begin(self, ctx: lw.Context) -> None:
        tmp = self.out / "address.tmp"
        tmp.write_text(self.serve.address)
        tmp.replace(self.out / "address")


def main(out: Path, token: str, fail: bool) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.randn(100)
    batches = list(zip(x.split(1), (2 * x).split(1), strict=True))
    serve = lw.callbacks.Serve(port=0, token=token)
    callbacks: list[lw.Callback] = [Slow(), serve, WriteAddress(serve, out)]
    if fail:
        (out / "fail").write_text("armed")
        callbacks.append(Boom(out / "fail"))
    spec = lw.setup(Tiny, loss=nn.MSELoss(), optimizer=torch.optim.SGD).set_opt_hparams(lr=1e-3)
    fitted = spec.fit(batches, epochs=100_000, verbose=False, callbacks=callbacks)
    (out / "done").write_text(str(fitted.ctx.epoch))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], len(sys.argv) > 3)
