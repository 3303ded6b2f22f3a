"""Save checkpoints during training, and keep the best weights (luz's ``model_checkpoint``,
``keep_best_model``)."""

from __future__ import annotations

import string
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from luzwidget.callbacks.monitor import Monitor, available_monitors
from luzwidget.core.callback import Callback
from luzwidget.core.compiled import original
from luzwidget.core.exceptions import ConfigError
from luzwidget.core.report import report
from luzwidget.storage.checkpoint import save_checkpoint

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["KeepBestModel", "ModelCheckpoint"]


class ModelCheckpoint(Callback):
    """Save a checkpoint at the end of each epoch (or only when ``monitor`` improves).

    Each file is a full checkpoint (model, optimizers, records, callbacks' state, epoch,
    RNG states) that ``ResumeFromCheckpoint`` resumes from and ``lw.load_weights`` reads.

    Parameters
    ----------
    path
        A file name, possibly a format string using ``{epoch}`` and any metric logged this
        epoch as ``{<set>_<metric>}``, e.g. ``"ckpt/epoch{epoch:02d}-{valid_loss:.3f}.pt"``.
        A directory (an existing one, a path ending with ``/``, or a name without a
        suffix or format fields, e.g. ``"checkpoints"``) gets ``epoch-{epoch:02d}.pt`` files.
    monitor, mode, min_delta
        What "best" means for ``save_best_only`` (see ``EarlyStopping``).
    save_best_only
        Save only at epochs where ``monitor`` improves on the best so far.

    Attributes
    ----------
    saved : list of str
        The files written, in order; ``best`` / ``best_epoch`` the best monitored value.
    """

    weight = 10

    def __init__(
        self,
        path: str | Path,
        monitor: str = "valid_loss",
        save_best_only: bool = False,
        mode: str = "min",
        min_delta: float = 0,
    ) -> None:
        text = str(path)
        folder = text.endswith(("/", "\\")) or Path(text).is_dir()
        if folder or ("{" not in text and not Path(text).suffix):
            text = str(Path(text) / "epoch-{epoch:02d}.pt")
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        except ValueError as exc:
            raise ConfigError(
                f"ModelCheckpoint: path={text!r} is not a valid format string: {exc}."
            ) from None
        self.path = text
        self.fields = {f.split(".")[0].split("[")[0] for f in fields}
        self.monitor = Monitor(monitor, mode, min_delta, "ModelCheckpoint")
        self.save_best_only = bool(save_best_only)
        self.best = self.monitor.worst
        self.best_epoch = 0
        self.saved: list[str] = []

    def on_fit_begin(self, ctx: Context) -> None:
        self.best, self.best_epoch = self.monitor.worst, 0

    def on_epoch_end(self, ctx: Context) -> None:
        if self.save_best_only:
            value = self.monitor.value(ctx)
            if not self.monitor.improved(value, self.best):
                return
            self.best, self.best_epoch = value, ctx.epoch
        path = self._format(ctx)
        save_checkpoint(ctx, path)
        self.saved.append(path)

    def _format(self, ctx: Context) -> str:
        values: dict[str, Any] = {"epoch": ctx.epoch}
        for name in available_monitors(ctx):
            set_, metric = name.split("_", 1)
            values[name] = ctx.history.value(metric, set_, ctx.epoch)
        missing = sorted(self.fields - set(values))
        if missing:
            raise ConfigError(
                f"ModelCheckpoint: path={self.path!r} uses {', '.join(missing)}, which "
                f"{'was' if len(missing) == 1 else 'were'} not logged at epoch {ctx.epoch}. "
                f"Available: epoch, {', '.join(available_monitors(ctx)) or 'no metrics'}."
            )
        return self.path.format(**values)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "saved": list(self.saved)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.saved = list(state["saved"])


class KeepBestModel(Callback):
    """Remember the weights of the best epoch and put them back at the end of training.

    Parameters
    ----------
    monitor, mode, min_delta
        What "best" means (see ``EarlyStopping``).

    Attributes
    ----------
    best, best_epoch
        The best monitored value and its epoch.
    """

    weight = 10

    def __init__(
        self, monitor: str = "valid_loss", mode: str = "min", min_delta: float = 0
    ) -> None:
        self.monitor = Monitor(monitor, mode, min_delta, "KeepBestModel")
        self.best = self.monitor.worst
        self.best_epoch = 0
        self.weights: dict[str, torch.Tensor] | None = None

    def on_fit_begin(self, ctx: Context) -> None:
        self.best, self.best_epoch, self.weights = self.monitor.worst, 0, None

    def on_epoch_end(self, ctx: Context) -> None:
        value = self.monitor.value(ctx)
        if self.monitor.improved(value, self.best):
            self.best, self.best_epoch = value, ctx.epoch
            model = original(ctx.model)  # its own keys (no _orig_mod.): its state_dict() is saved
            self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def on_fit_end(self, ctx: Context) -> None:
        if self.weights is not None:
            original(ctx.model).load_state_dict(self.weights)
            if ctx.verbose:
                report(
                    f"Restored the weights of epoch {self.best_epoch} "
                    f"({self.monitor.name}={self.best:.6g})."
                )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "weights": self.weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.weights = state["weights"]
