"""luzwidget: luz's ``setup() -> fit()`` for PyTorch, as a loop you can step, pause and edit.

>>> import luzwidget as lw
>>> model = lw.setup(Net, loss=torch.nn.CrossEntropyLoss(), optimizer=torch.optim.Adam)
>>> fitted = model.set_opt_hparams(lr=1e-3).fit((x, y), epochs=10, valid_data=0.2)
>>> run = model.run((x, y), epochs=10)      # nothing runs yet
>>> run.step("batch"); run.ctx.loss         # step and inspect
>>> run.start()                             # train in the background (notebooks)

The headless core imports no widget library; ``run.dashboard()`` loads the widgets.
"""

from __future__ import annotations

from luzwidget import callbacks, datasets, metrics
from luzwidget.callbacks import Callback
from luzwidget.control.run import Run
from luzwidget.core.accelerator import Accelerator
from luzwidget.core.context import Context
from luzwidget.core.events import Event
from luzwidget.core.exceptions import (
    CallbackError,
    CheckpointError,
    ConfigError,
    DataError,
    EarlyStop,
    LuzwidgetError,
    RunStateError,
    StepError,
    StopEpoch,
    StopFit,
)
from luzwidget.fitted import Evaluation, Fitted
from luzwidget.module import Setup, setup, show_loop
from luzwidget.remote import AttachError, attach
from luzwidget.saving import load, load_weights, save, save_weights
from luzwidget.storage.snapstore import Snapshot, SnapshotStore

__version__ = "0.1.0"

__all__ = [
    "Accelerator",
    "AttachError",
    "Callback",
    "CallbackError",
    "CheckpointError",
    "ConfigError",
    "Context",
    "DataError",
    "EarlyStop",
    "Evaluation",
    "Event",
    "Fitted",
    "LuzwidgetError",
    "Run",
    "RunStateError",
    "Setup",
    "Snapshot",
    "SnapshotStore",
    "StepError",
    "StopEpoch",
    "StopFit",
    "attach",
    "callbacks",
    "datasets",
    "load",
    "load_weights",
    "metrics",
    "save",
    "save_weights",
    "setup",
    "show_loop",
]
