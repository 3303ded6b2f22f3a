"""A training script for tests/callbacks/test_auto_resume.py, run as a real process.

usage: python auto_resume_job.py STATE OUT MARKER EVERY [DATA]

Trains with AutoResume(STATE); with MARKER != "-", the first run writes MARKER at epoch 2,
batch 5 and then hangs there until the test kills it (SIGKILL). Started again, the script
resumes from STATE. At the end the final weights are saved to OUT. DATA ``tensors`` trains
on the tensors themselves (batched by index) instead of a Dataset with noise.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

import luzwidget as lw
from luzwidget.callbacks import AutoResume, EarlyStopping, LRScheduler
from tests.training_helpers import Net, NoisyData, make_data, make_spec


class HangOnce(lw.Callback):
    """Write the marker at epoch 2, batch 5, then hang (the first time only)."""

    def __init__(self, marker: str) -> None:
        self.marker = Path(marker) if marker != "-" else None

    def on_train_batch_end(self, ctx: lw.Context) -> None:
        if self.marker is None or self.marker.exists() or (ctx.epoch, ctx.iter) != (2, 5):
            return
        self.marker.write_text(str(os.getpid()))
        time.sleep(120)


def main(state: str, out: str, marker: str, every: str, data: str = "noisy") -> None:
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    x, y = make_data(96)
    vx, vy = make_data(32, seed=1)
    spec = make_spec(Net)
    callbacks = [
        AutoResume(state, every_n_batches=None if every == "-" else int(every)),
        LRScheduler(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.7),
        EarlyStopping(patience=10),
        HangOnce(marker),
    ]
    fitted = spec.fit(
        (x, y) if data == "tensors" else NoisyData(x, y),
        epochs=4,
        valid_data=(vx, vy),
        callbacks=callbacks,
        verbose=False,
        dataloader_options={"batch_size": 8},
    )
    torch.save({"model": fitted.model.state_dict(), "records": fitted.records["metrics"]}, out)
    assert not Path(state).exists(), "AutoResume must delete its file after a successful fit"


if __name__ == "__main__":
    main(*sys.argv[1:6])
