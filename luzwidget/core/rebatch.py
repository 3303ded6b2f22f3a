"""A training loader's batch size, changed between two epochs.

``run.edit("batch_size", n)`` checks now that the training loader can be re-made with
``n`` (:func:`with_batch_size`) and leaves ``n`` in the engine (``engine.rebatch``); the
loop re-makes the loader at the start of the next epoch (:func:`apply_pending`), so an
epoch never mixes two sizes. Everything else about the loader stays: its dataset, sampler
(the same object, so a shuffled order is drawn as before), generator, ``drop_last``,
collate function, workers and device.

The batch size is part of the run's state: checkpoints and snapshots keep it
(``capture(...)["batch_size"]``) and restoring one re-makes the loader with it
(:func:`set_batch_size`), so a rewind to before a change trains with the size of then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch.utils.data import BatchSampler, DataLoader, IterableDataset

from luzwidget.core.accelerator import _DeviceLoader
from luzwidget.core.engine import engine_of
from luzwidget.core.exceptions import ConfigError
from luzwidget.core.index_loader import IndexLoader

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = [
    "apply_pending",
    "batch_size_of",
    "check_batch_size",
    "set_batch_size",
    "with_batch_size",
]


def batch_size_of(loader: Any) -> int | None:
    """The loader's ``batch_size`` (None: it has none, e.g. a ``batch_sampler``)."""
    size = getattr(getattr(loader, "loader", loader), "batch_size", None)
    return size if isinstance(size, int) else None


def _dataloader(loader: DataLoader[Any], n: int) -> DataLoader[Any]:
    workers = loader.num_workers
    return DataLoader(
        loader.dataset,
        batch_size=n,
        sampler=loader.sampler,
        drop_last=loader.drop_last,
        collate_fn=loader.collate_fn,
        num_workers=workers,
        pin_memory=loader.pin_memory,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        generator=loader.generator,
        prefetch_factor=loader.prefetch_factor if workers > 0 else None,
        persistent_workers=loader.persistent_workers,
        multiprocessing_context=loader.multiprocessing_context,
        pin_memory_device=loader.pin_memory_device,
    )


def with_batch_size(loader: Any, n: int) -> Any:
    """``loader`` re-made with batch size ``n`` (itself when it has that size already).

    Raises
    ------
    ConfigError
        If the loader is not one luzwidget can re-make (a custom ``batch_sampler``, an
        iterable dataset, a loader of another kind).
    """
    if batch_size_of(loader) == n:
        return loader
    if isinstance(loader, _DeviceLoader):
        return _DeviceLoader(with_batch_size(loader.loader, n), loader.device)
    if isinstance(loader, IndexLoader):
        return IndexLoader(
            loader.dataset,
            n,
            drop_last=loader.drop_last,
            sampler=loader.sampler,
            generator=loader.generator,
            collate=loader.collate_fn,
            device=loader.device,
            pin_memory=loader.pin_memory,
        )
    plain = (
        isinstance(loader, DataLoader)
        and loader.batch_size is not None
        and type(loader.batch_sampler) is BatchSampler
        and not isinstance(loader.dataset, IterableDataset)
    )
    if not plain:
        raise ConfigError(
            f"batch_size: the training loader ({type(loader).__name__}) cannot be re-made "
            "with another batch size (luzwidget re-makes DataLoaders with a batch_size and "
            "no batch_sampler, of a map-style Dataset, and in-memory data); build the "
            "loader again yourself and start a new fit."
        )
    return _dataloader(loader, n)


def check_batch_size(ctx: Context, value: Any) -> int:
    """``value`` as a batch size the training loader can take (see :func:`with_batch_size`).

    Raises
    ------
    ConfigError
        If ``value`` is not an int >= 1, the loader cannot be re-made, or it would have no
        batch (``drop_last`` with fewer samples than ``value``).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"batch_size must be a whole number >= 1 (e.g. 32), got {type(value).__name__} "
            f"{value!r}."
        )
    if ctx.train_data is None:
        raise ConfigError("batch_size: this run has no training loader to re-make.")
    remade = with_batch_size(ctx.train_data, value)
    if len(remade) == 0:
        raise ConfigError(
            f"batch_size={value}: the training loader drops its last partial batch "
            f"(drop_last=True) and has fewer samples than {value}, so an epoch would have "
            "no batch; choose a smaller batch_size."
        )
    return value


def set_batch_size(ctx: Context, n: int | None) -> None:
    """Re-make the training loader with batch size ``n`` now (None or the same: nothing);
    a change still waiting for the next epoch is dropped."""
    engine_of(ctx).rebatch = None
    if n is None or ctx.train_data is None or batch_size_of(ctx.train_data) == n:
        return
    was_data = ctx.data is ctx.train_data
    ctx.train_data = with_batch_size(ctx.train_data, n)
    if was_data:
        ctx.data = ctx.train_data


def apply_pending(ctx: Context) -> None:
    """At an epoch's start (the loop): re-make the loader with a batch size edited since."""
    pending = engine_of(ctx).rebatch
    if pending is not None:
        set_batch_size(ctx, pending)
