"""Resume training after a crash, or from a checkpoint (luz's ``auto_resume``,
``resume_from_checkpoint``)."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from luzwidget.core.accumulate import steps_now
from luzwidget.core.callback import Callback
from luzwidget.core.data import loader_len
from luzwidget.core.exceptions import ConfigError
from luzwidget.core.report import report
from luzwidget.storage.checkpoint import get_rng_states, restore, save_checkpoint, set_rng_states
from luzwidget.storage.files import read, remove_stale_tmp

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["AutoResume", "ResumeFromCheckpoint"]


class AutoResume(Callback):
    """Checkpoint the run so that starting the same script again continues it exactly.

    A checkpoint is written (atomically) at the end of each epoch, and with
    ``every_n_batches`` also during the epoch. At ``on_fit_begin``, if the file exists,
    the run is restored from it: model, optimizers, records, callbacks' state, epoch,
    RNG states, and the position in the epoch; the loop then skips the finished epochs
    (and batches). On CPU, the final weights are bit-identical to those of a run that
    was never interrupted. The file is deleted when the fit ends (also by early
    stopping), but kept when it is interrupted (Ctrl-C) or fails. Temporary files that a
    kill inside a write left next to it are removed at the next write and when the fit
    ends. A file written with another optimizer class is refused, naming both.

    Parameters
    ----------
    path
        The checkpoint file.
    every_n_batches
        Also checkpoint every this many training batches (None: at epoch ends only).

    Notes
    -----
    The weights, optimizers, RNG and data order after a mid-epoch resume are exact. With
    ``fit(..., accumulate=k)`` a mid-epoch checkpoint is written at the end of the group
    of batches it falls in. A rewind to the fit's start (``run.rewind()`` inside epoch 1)
    begins the fit again as it first began: from the file it was resumed from, if any,
    never from the file this fit wrote since (it keeps that first state in memory). The
    training metrics logged for the resumed epoch cover only the batches run after the
    resume. A callback that draws random numbers at ``on_fit_begin`` should have a weight
    below this one's (100), or the resumed run draws differently.
    """

    weight = 100  # restore after every other callback's on_fit_begin; save after them

    def __init__(
        self, path: str | os.PathLike[str] = "./state.pt", every_n_batches: int | None = None
    ) -> None:
        if every_n_batches is not None and (
            isinstance(every_n_batches, bool)
            or not isinstance(every_n_batches, int)
            or every_n_batches < 1
        ):
            raise ConfigError(
                f"AutoResume: every_n_batches must be a positive int or None, got "
                f"{every_n_batches!r}."
            )
        self.path = Path(path)
        self.every_n_batches = every_n_batches
        self.resumed_from: dict[str, int] | None = None
        self._epoch_rng: dict[str, Any] | None = None
        self._interrupted = False
        self._wrapped: _ResumedLoader | None = None
        self._mine = False  # the file now is this fit's own (written since it began)
        self._began: dict[str, Any] | None = None  # what this fit resumed from, if anything
        self._due = False  # a mid-epoch checkpoint waits for the optimizers to step

    def on_fit_begin(self, ctx: Context) -> None:
        self._interrupted = False
        self.resumed_from = None
        if not self._mine:  # else the fit begins again (a rewind to its start): as it began
            self._began = read(self.path, "checkpoint") if self.path.exists() else None
        if self._began is None:
            return
        # Training writes into what is restored (records, optimizer state): restore a copy.
        state = copy.deepcopy(self._began)
        restore(ctx, state, repr(str(self.path)))
        position = state.get("position") or {}
        self.resumed_from = {"epoch": int(state["epoch"]), "batch": int(position.get("batch", 0))}
        if position.get("batch"):
            self._wrapped = _ResumedLoader(ctx.train_data, ctx, position, state["rng"])
            ctx.train_data = self._wrapped
        if ctx.verbose:
            done = (
                f"epoch {position['epoch']} up to batch {position['batch']}"
                if position.get("batch")
                else f"epoch {state['epoch']}"
            )
            report(f"AutoResume: resuming from {self.path} ({done} done).")

    def on_train_begin(self, ctx: Context) -> None:
        wrapped = self._wrapped
        if wrapped is not None and wrapped.position["epoch"] == ctx.epoch:
            self._epoch_rng = wrapped.position["epoch_rng"]
        elif self.every_n_batches:
            self._epoch_rng = get_rng_states()

    def on_train_batch_end(self, ctx: Context) -> None:
        every = self.every_n_batches
        if not every:
            return
        self._due = self._due or ctx.iter % every == 0
        # With gradient accumulation, at the end of a group (no gradients half summed).
        if not self._due or not steps_now(ctx) or ctx.iter == loader_len(ctx.train_data):
            return
        self._due = False
        position = {"epoch": ctx.epoch, "batch": ctx.iter, "epoch_rng": self._epoch_rng}
        self._save(ctx, position)

    def _save(self, ctx: Context, position: dict[str, Any] | None = None) -> None:
        save_checkpoint(ctx, self.path, position)
        self._mine = True

    def on_train_end(self, ctx: Context) -> None:
        self._due = False
        if self._wrapped is not None:
            ctx.train_data, self._wrapped = self._wrapped.loader, None

    def on_epoch_end(self, ctx: Context) -> None:
        self._save(ctx)

    def on_interrupt(self, ctx: Context) -> None:
        self._interrupted = True

    def on_fit_end(self, ctx: Context) -> None:
        self._mine, self._began = False, None  # a later fit reads the file (if kept) anew
        if self._wrapped is not None:
            ctx.train_data, self._wrapped = self._wrapped.loader, None
        if ctx.rank != 0:  # under torch.distributed, rank 0 owns the file
            return
        if not self._interrupted:
            self.path.unlink(missing_ok=True)
        remove_stale_tmp(self.path)  # what a kill inside a write left behind

    def __repr__(self) -> str:
        return f"AutoResume({str(self.path)!r}, every_n_batches={self.every_n_batches})"


class _ResumedLoader:
    """The training loader for the epoch a mid-epoch checkpoint was taken in.

    It replays the epoch's start (RNG state, then the first ``batch`` batches, discarded,
    so a shuffling loader draws the same order), sets the RNG to its state after those
    batches, and yields the rest; ``ctx.iter`` goes on from ``batch``.
    """

    def __init__(
        self, loader: Any, ctx: Context, position: dict[str, Any], after: dict[str, Any]
    ) -> None:
        self.loader, self.ctx, self.position, self.after = loader, ctx, position, after

    def __iter__(self) -> Iterator[Any]:
        if self.ctx.epoch != self.position["epoch"]:
            yield from self.loader
            return
        skip = int(self.position["batch"])
        set_rng_states(self.position["epoch_rng"])
        it = iter(self.loader)
        for _ in range(skip):
            next(it, None)
        set_rng_states(self.after)  # the state right after batch `skip`
        self.ctx.iter = skip  # the loop counts on from here
        yield from it

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


class ResumeFromCheckpoint(Callback):
    """Start training from a checkpoint written by ``ModelCheckpoint`` (or ``AutoResume``).

    Parameters
    ----------
    path
        A checkpoint file, or a directory: its last file in name order is used.
    restore_model_state
        Load the model's weights.
    restore_records
        Load the records, and with them the epoch count and RNG states: training goes on
        after the checkpoint's epoch, up to ``fit``'s ``epochs``.
    restore_optimizer_state
        Load every optimizer's state (moments, learning rates).
    restore_callbacks_state
        Load the state of each callback (matched by class, in order).

    Raises
    ------
    FileNotFoundError
        At ``on_fit_begin``, if there is no checkpoint at ``path``.
    CheckpointError
        If the file is corrupt or does not match the model (nothing is changed).
    """

    weight = 100

    def __init__(
        self,
        path: str | os.PathLike[str],
        restore_model_state: bool = True,
        restore_records: bool = False,
        restore_optimizer_state: bool = False,
        restore_callbacks_state: bool = False,
    ) -> None:
        self.path = Path(path)
        self.parts = {
            "model": bool(restore_model_state),
            "records": bool(restore_records),
            "optimizers": bool(restore_optimizer_state),
            "callbacks": bool(restore_callbacks_state),
        }

    def on_fit_begin(self, ctx: Context) -> None:
        path = self.path
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            if not files:
                raise FileNotFoundError(f"ResumeFromCheckpoint: no checkpoint in {str(path)!r}.")
            path = files[-1]
        state = read(path, "checkpoint")
        with_records = self.parts["records"]
        restore(ctx, state, repr(str(path)), **self.parts, epoch=with_records, rng=with_records)

    def __repr__(self) -> str:
        flags = ", ".join(f"restore_{k}={v}" for k, v in self.parts.items())
        return f"ResumeFromCheckpoint({str(self.path)!r}, {flags})"
