"""Accelerator(processes=2) from a real kernel: a model class defined in a cell (it travels
by value with cloudpickle) trained by 2 spawned workers, steered from cells; the kernel shut
down, or killed, and no worker survives it."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest
from kernel_harness import Kernel

from tests.test_launch import gone, kill

pytestmark = pytest.mark.kernel

LAUNCH = """
import torch, luzwidget as lw
from torch import nn

class Net(nn.Module):  # defined here, in __main__
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)

    def forward(self, x):
        return self.lin(x)

g = torch.Generator().manual_seed(0)
x = torch.randn(64, 4, generator=g)
spec = lw.setup(Net, loss=nn.MSELoss(), optimizer=torch.optim.SGD).set_opt_hparams(lr=0.1)
run = spec.run((x, x.sum(1, keepdim=True)), epochs={epochs}, verbose=False,
               dataloader_options={{"batch_size": 8}},
               accelerator=lw.Accelerator(processes=2, cpu=True))
print(*run.pids)
"""


def test_launch_from_a_cell_steer_and_shut_the_kernel_down() -> None:
    pids: list[int] = []
    try:
        with Kernel(timeout=180.0) as kernel:
            pids = [int(p) for p in kernel.execute(LAUNCH.format(epochs=3)).stdout.split()]
            assert len(pids) == 2
            assert kernel.eval("type(run).__name__") == "Launched"
            kernel.execute("run.start(); run.wait(120)")
            assert kernel.eval("str(run.state)") == "done"
            assert kernel.eval("len(run.records['metrics']['train'])") == 3
        assert gone(pids)  # the kernel's shutdown ended them (atexit)
    finally:
        kill(pids)


def test_a_killed_kernel_leaves_no_worker() -> None:
    pids: list[int] = []
    try:
        with Kernel(timeout=180.0) as kernel:
            pids = [int(p) for p in kernel.execute(LAUNCH.format(epochs=1000)).stdout.split()]
            kernel.execute("run.start()")
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(kernel.eval("__import__('os').getpid()")), signal.SIGKILL)
            assert gone(pids, within=60.0)  # each worker saw its parent die
    finally:
        kill(pids)
