"""Write each epoch's metrics to a CSV file or to TensorBoard (luz's ``csv_logger``,
``tfevents``)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from luzwidget.core.callback import Callback
from luzwidget.core.compiled import named_parameters
from luzwidget.core.records import MONITORED_SETS as _SETS
from luzwidget.core.values import as_scalar

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["CSVLogger", "TensorBoard"]


class CSVLogger(Callback):
    """Write the metrics to ``path`` at each epoch end: one row per epoch and set.

    Columns: ``epoch``, ``set``, then each metric (``loss`` first) in the order they were
    first logged. The file is rewritten from the records each epoch, so it always holds
    the whole history, also after a resume or when training continues.

    Examples
    --------
    >>> cb = CSVLogger("logs/metrics.csv")
    """

    weight = 20

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def on_epoch_end(self, ctx: Context) -> None:
        if ctx.rank != 0:  # under torch.distributed, rank 0 writes the (global) records
            return
        history = ctx.history
        columns: list[str] = []
        rows = []
        n_epochs = max((history.epochs(s) for s in _SETS), default=0)
        for epoch in range(1, n_epochs + 1):
            for set_ in _SETS:
                values = history.metrics(set_, epoch, default={})
                if not values:
                    continue
                columns += [name for name in values if name not in columns]
                rows.append({"epoch": epoch, "set": set_, **values})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["epoch", "set", *columns])
            for row in rows:
                writer.writerow([row["epoch"], row["set"], *(_cell(row.get(c)) for c in columns)])
        os.replace(tmp, self.path)

    def __repr__(self) -> str:
        return f"CSVLogger({str(self.path)!r})"


def _cell(value: Any) -> Any:
    value = as_scalar(value)
    if value is None:
        return ""
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    if hasattr(value, "tolist"):
        return json.dumps(value.tolist())
    return value


class TensorBoard(Callback):
    """Log metrics (and optionally weight histograms) for TensorBoard, through
    ``torch.utils.tensorboard``.

    At each epoch end: every scalar metric as ``<set>/<metric>`` (e.g. ``valid/loss``),
    each optimizer's learning rate as ``lr/<name>`` (its first parameter group's; the
    others, if any, as ``lr/<name>/group1``, ``lr/<name>/group2``...), and with
    ``histograms=True`` every parameter's values as ``weights/<name>``; the step is the
    epoch.

    Parameters
    ----------
    logdir
        Directory of the event files (``tensorboard --logdir <logdir>`` shows them).
    histograms
        Also log a histogram of each parameter at each epoch end.

    Raises
    ------
    ImportError
        If tensorboard is not installed; ``pip install tensorboard`` (or
        ``pip install luzwidget[tensorboard]``) fixes it.
    """

    weight = 20

    def __init__(self, logdir: str | os.PathLike[str] = "runs", histograms: bool = False) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError(
                "TensorBoard needs the tensorboard package: pip install tensorboard "
                "(or pip install luzwidget[tensorboard])."
            ) from exc
        self._writer_cls = SummaryWriter
        self.logdir = str(logdir)
        self.histograms = bool(histograms)
        self.writer: Any = None

    def on_fit_begin(self, ctx: Context) -> None:
        if ctx.rank == 0:  # under torch.distributed, rank 0 writes (the others keep None)
            self.writer = self._writer_cls(log_dir=self.logdir)

    def on_epoch_end(self, ctx: Context) -> None:
        if self.writer is None:
            return
        epoch = ctx.epoch
        for set_ in _SETS:
            for name, value in ctx.history.metrics(set_, epoch, default={}).items():
                value = as_scalar(value)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{set_}/{name}", value, epoch)
        for name, opt in ctx.optimizers.items():  # lr/opt, then lr/opt/group1... if several
            for i, group in enumerate(opt.param_groups):
                tag = f"lr/{name}" if i == 0 else f"lr/{name}/group{i}"
                self.writer.add_scalar(tag, float(group["lr"]), epoch)
        if self.histograms:
            for name, param in named_parameters(ctx.model):  # no DDP/compile prefix
                self.writer.add_histogram(f"weights/{name}", param.detach().cpu(), epoch)
        self.writer.flush()

    def on_fit_end(self, ctx: Context) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __repr__(self) -> str:
        return f"TensorBoard({self.logdir!r}, histograms={self.histograms})"
