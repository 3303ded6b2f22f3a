"""A training script served to notebooks, for tests/test_remote*.py and the kernel tests.

usage: python serve_job.py OUT_DIR TOKEN [FAIL]   (tests use :class:`Job`, below)

A blocking ``fit()`` of a one-weight model over ready batches (slowed to ~500 batches/s so
it trains for as long as a test needs and leaves the CPU to others), with
``Serve(port=0, token=TOKEN)``. Once serving, it writes the address to OUT_DIR/address.
With FAIL, a callback raises at epoch 2, batch 5 while the file OUT_DIR/fail exists (the
test "fixes" the cause by deleting it, then retries). At the end it writes OUT_DIR/done
with the final epoch.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


# -- for the tests: the script as a process ------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def wait_until(pred: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll ``pred`` until it is truthy (bounded: fails naming ``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Job:
    """tests/jobs/serve_job.py as a process: its address, token, output dir; killed in the end."""

    def __init__(self, out: Path, fail: bool = False) -> None:
        self.out, self.token = out, secrets.token_hex(12)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        args = [
            sys.executable,
            str(Path(__file__)),
            str(out),
            self.token,
            *(["fail"] if fail else []),
        ]
        self.log = (out / "log").open("w")
        self.proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=self.log, stderr=self.log)
        try:
            self.address = wait_until(self._address, "the job to serve", timeout=120)
        except BaseException:
            self.kill()
            raise

    def _address(self) -> str | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the job exited:\n{(self.out / 'log').read_text()}")
        path = self.out / "address"
        return path.read_text() if path.exists() else None

    def attach(self, timeout: float = 20) -> Any:
        """``lw.attach`` to it."""
        return lw.attach(self.address, token=self.token, timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self.log.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], len(sys.argv) > 3)
