"""One epoch's batches of a loader: a batch that failed to load is loaded again on retry,
and a DataLoader's epoch can be rebuilt part way (what a step back needs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import repeat
from typing import Any

from torch.utils.data import DataLoader, IterableDataset

from luzwidget.core.accelerator import _DeviceLoader, to_device
from luzwidget.core.index_loader import IndexLoader

__all__ = ["Replay", "advanced", "epoch_batches", "sampled"]


class Replay:
    """The sampler iterator of a DataLoader's epoch, able to hand out its last indices again.

    A DataLoader iterator draws a batch's indices, then fetches them; when the fetch raises
    (``Dataset.__getitem__``, ``collate_fn``), the indices are consumed. With ``again``
    set, the next draw returns them once more, so the loader's own path (fetcher, collate,
    pin memory) loads exactly the batch that failed. One Python call per batch, for
    DataLoaders only: ready batches (a list) are iterated untouched.

    ``last`` and ``prev`` are the last two index lists drawn; the loop sets ``failed`` when
    loading the last one raised, so :meth:`delivered` is always the current batch's
    (``ctx.indices``), read without drawing anything.
    """

    __slots__ = ("again", "failed", "it", "last", "prev")

    def __init__(self, it: Iterator[Any]) -> None:
        self.it, self.last, self.prev, self.again, self.failed = it, None, None, False, False

    def __iter__(self) -> Replay:
        return self

    def __next__(self) -> Any:
        self.failed = False
        if self.again:
            self.again = False
            return self.last
        self.prev, self.last = self.last, next(self.it)
        return self.last

    def delivered(self) -> Any:
        """The indices of the last batch the loader delivered (None: none yet)."""
        return self.prev if self.failed else self.last


def epoch_batches(loader: Iterable[Any]) -> tuple[Iterator[Any], Replay | None, str]:
    """An iterator over one epoch of ``loader`` that survives a batch failing to load.

    Returns ``(batches, replay, limit)``. After ``next(batches)`` raised, setting
    ``replay.again`` makes the next call load the same batch again; ``replay`` is None
    where that cannot be done, and ``limit`` says why (for the fault's message):

    - an :class:`~luzwidget.core.index_loader.IndexLoader`: exact (the same positions
      are taken again);
    - a map-style Dataset in a DataLoader with ``num_workers=0``: exact (the indices of
      the failed batch are fetched again, by the loader itself);
    - ``num_workers > 0``: the workers have already been sent the next indices and the
      failed batch is gone from the queue (the iterator goes on with the next batch);
    - an IterableDataset or another iterable: its stream cannot be rewound.

    A loader the accelerator moves to a device is iterated through ``map``, which,
    unlike a generator, stays usable after the inner loader raised.
    """
    if isinstance(loader, IndexLoader):
        epoch = iter(loader)
        return epoch, epoch, ""  # type: ignore[return-value]  # has Replay's `again`
    device = None
    if isinstance(loader, _DeviceLoader):
        device, non_blocking, loader = loader.device, loader.non_blocking, loader.loader
    it = iter(loader)
    replay, limit = None, ""
    if not isinstance(loader, DataLoader):
        limit = f"a {type(loader).__name__} of batches cannot load a failed batch again"
    elif isinstance(loader.dataset, IterableDataset):
        limit = "an IterableDataset cannot be rewound to load a failed batch again"
    elif loader.num_workers > 0 or not isinstance(getattr(it, "_sampler_iter", None), Iterator):
        limit = (
            "with num_workers > 0 the workers already hold the next batches' indices, so the "
            "failed batch cannot be loaded again (num_workers=0 can)"
        )
    else:
        replay = it._sampler_iter = Replay(it._sampler_iter)  # type: ignore[attr-defined]
    if device is not None:
        it = map(to_device, it, repeat(device), repeat(non_blocking))
    return it, replay, limit


def sampled(loader: Iterable[Any]) -> bool:
    """Whether ``loader`` is a DataLoader whose epoch :func:`advanced` can rebuild: a
    map-style Dataset, ``num_workers=0`` (possibly moved to a device by the accelerator)."""
    if isinstance(loader, _DeviceLoader):
        loader = loader.loader
    return (
        isinstance(loader, DataLoader)
        and not isinstance(loader.dataset, IterableDataset)
        and loader.num_workers == 0
    )


def advanced(loader: Iterable[Any], k: int) -> tuple[Iterator[Any], Replay, str]:
    """:func:`epoch_batches` of a :func:`sampled` loader, its first ``k`` batches' indices
    drawn from the batch sampler but not loaded. The caller sets the random state of the
    epoch's start first: the sampler then draws the epoch's order again."""
    it, replay, limit = epoch_batches(loader)
    assert isinstance(replay, Replay), f"advanced() needs a sampled() loader, not {loader!r}"
    for _ in range(k):
        next(replay)
    return it, replay, limit
