"""In-memory data batched by index: the epoch's order drawn as a DataLoader draws it, then slices.

A ``DataLoader(TensorDataset(X, y))`` fetches every sample in Python and stacks them again.
:class:`IndexLoader` draws the epoch's order once and takes each batch as
``X.index_select(0, order[i:i + bs])`` on the data's device. It consumes the random numbers
a DataLoader consumes, at the same moments (a base seed when an epoch's iterator is made;
the sampler's seed and permutation at its first batch), so its batches are the DataLoader's,
bit for bit, and so is every draw after them: a run gives the same results on either path.
The order and the position in it are therefore run state exactly as they were on the
DataLoader path: the RNG states at the epoch's start and the batch count (which is what a
retry, a rewind and AutoResume restore).

:func:`luzwidget.core.data.index_loader_of` turns a DataLoader luzwidget built into one
where nothing in it needs a DataLoader; :meth:`IndexLoader.shard` gives a rank the indices a
``DistributedSampler`` gives it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import (
    Dataset,
    DistributedSampler,
    RandomSampler,
    SequentialSampler,
    Subset,
    TensorDataset,
    default_collate,
)

from luzwidget.core.tensor_tree import Build, TensorTree, flatten

__all__ = ["IndexLoader", "sliceable"]

Sampler = RandomSampler | SequentialSampler | DistributedSampler[Any]
Fetch = Callable[[int, int], Any]
Take = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# -- where a batch's rows come from ---------------------------------------------------------


def sliceable(dataset: Any) -> bool:
    """Whether an :class:`IndexLoader` can batch ``dataset``: a tensor-backed one, or one
    a DataLoader fetches with one ``__getitems__`` call."""
    return _tensor_backed(dataset) or _batched(dataset)


def _tensor_backed(dataset: Any) -> bool:
    """A TensorDataset or TensorTree, possibly inside Subsets (exact types: a subclass's
    ``__getitem__`` may do more than index)."""
    while type(dataset) is Subset:
        dataset = dataset.dataset
    return type(dataset) in (TensorDataset, TensorTree)


def _batched(dataset: Any) -> bool:
    """True where a DataLoader fetches a batch with one ``__getitems__`` call."""
    return bool(getattr(dataset, "__getitems__", None))


def _rows(dataset: Any) -> tuple[Any, torch.Tensor | None]:
    """``(tree, rows)`` of a tensor-backed dataset: position ``i`` is row ``rows[i]`` of the
    tree's tensors (``rows`` None: row ``i``)."""
    if type(dataset) is TensorDataset:
        return list(dataset.tensors), None  # a list, as default_collate makes of a tuple
    if type(dataset) is TensorTree:
        return dataset.tree, None
    tree, rows = _rows(dataset.dataset)  # a Subset
    mine = torch.as_tensor(list(dataset.indices), dtype=torch.int64)
    return tree, mine if rows is None else rows[mine]


def _index_select(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return t.index_select(0, idx)  # contiguous, as torch.stack of the rows would be


def _taker(where: torch.device, device: torch.device | None, pin: bool) -> Take:
    """How rows of a tensor on ``where`` are taken for ``device`` (None: left where they are).

    CPU data for a CUDA device is gathered into pinned memory and copied with
    ``non_blocking``, so the copy overlaps the work queued before it (the caching host
    allocator keeps the block until the copy is done). Untested on a GPU so far.
    """
    if device is None or device == where:
        return _index_select
    if pin and where.type == "cpu" and device.type == "cuda":

        def pinned(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            out = torch.empty((len(idx), *t.shape[1:]), dtype=t.dtype, pin_memory=True)
            return torch.index_select(t, 0, idx, out=out).to(device, non_blocking=True)

        return pinned
    return lambda t, idx: t.index_select(0, idx).to(device)


class _Source:
    """How a batch is made from the positions it holds and put where it is used."""

    def __init__(
        self, dataset: Any, collate: Callable[[Any], Any], device: torch.device | None, pin: bool
    ) -> None:
        self.dataset, self.collate = dataset, collate
        self.rows: torch.Tensor | None = None
        self.leaves: list[torch.Tensor] = []
        self.build: Build | None = None  # None: a Dataset's own __getitems__
        if _tensor_backed(dataset):
            tree, self.rows = _rows(dataset)
            self.build = flatten(tree, self.leaves)
            if type(tree) is list and all(type(t) is torch.Tensor for t in tree):
                self.build = list  # a TensorDataset's: a flat list
        self.takes = [_taker(t.device, device, pin) for t in self.leaves]

    def fetcher(self, order: torch.Tensor) -> Fetch:
        """What makes the batch of positions ``order[a:b]``, for one epoch's ``order``."""
        build = self.build
        if build is None:
            dataset, collate = self.dataset, self.collate
            return lambda a, b: collate(dataset.__getitems__(order[a:b].tolist()))
        rows = order if self.rows is None else self.rows[order]
        leaves = self.leaves
        on = {where: rows.to(where) for where in {t.device for t in leaves}}  # once an epoch
        if build is list and len(on) == 1 and all(f is _index_select for f in self.takes):
            (index,) = on.values()

            def sliced(a: int, b: int) -> list[torch.Tensor]:  # the common case, lean
                idx = index[a:b]
                return [t.index_select(0, idx) for t in leaves]

            return sliced
        parts = [(f, t, on[t.device]) for f, t in zip(self.takes, leaves, strict=True)]
        return lambda a, b: build([f(t, o[a:b]) for f, t, o in parts])


# -- the loader ------------------------------------------------------------------------------


class IndexLoader:
    """A DataLoader's batches of in-memory data, taken by index instead of sample by sample.

    Parameters
    ----------
    dataset
        A TensorDataset or :class:`~luzwidget.core.tensor_tree.TensorTree` (also inside
        Subsets, e.g. from ``random_split``): a batch is a slice of each tensor. Or a
        map-style Dataset with ``__getitems__``: a batch is
        ``collate(dataset.__getitems__(indices))``, the DataLoader's own fetch.
    batch_size, drop_last
        As for a DataLoader.
    sampler
        The order, read as a specification: a ``SequentialSampler``, a ``RandomSampler``
        (no replacement, one pass) or a ``DistributedSampler`` (this rank's share;
        ``set_epoch`` reshuffles it as usual). Default: sequential.
    generator
        The DataLoader's ``generator``: an epoch draws its base seed from it (or from
        torch's global generator) as a DataLoader's iterator does.
    collate
        Makes a batch of a ``__getitems__`` Dataset's samples.
    device
        Where batches go; None: where the data is (data on a GPU stays there).
    pin_memory
        False: CPU data for a CUDA device is copied from pageable memory; otherwise it is
        gathered into pinned memory and copied with ``non_blocking``.
    """

    num_workers = 0

    def __init__(
        self,
        dataset: Dataset[Any],
        batch_size: int,
        *,
        drop_last: bool = False,
        sampler: Sampler | None = None,
        generator: torch.Generator | None = None,
        collate: Callable[[Any], Any] = default_collate,
        device: torch.device | None = None,
        pin_memory: bool | None = None,
    ) -> None:
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)
        if sampler is None:
            sampler = SequentialSampler(dataset)  # type: ignore[arg-type]  # a sized Dataset
        self.sampler: Sampler = sampler
        self.generator = generator
        self.collate_fn = collate
        self.device = device
        self.pin_memory = pin_memory
        self._source = _Source(dataset, collate, device, pin_memory is not False)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_source"}  # closures: rebuilt

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._source = _Source(
            self.dataset, self.collate_fn, self.device, self.pin_memory is not False
        )

    def __len__(self) -> int:
        n, size = len(self.sampler), self.batch_size
        return n // size if self.drop_last else math.ceil(n / size)

    def __iter__(self) -> _Epoch:
        # What a DataLoader's iterator draws when it is made (its workers' base seed).
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        return _Epoch(self)

    def to(self, device: torch.device) -> IndexLoader:
        """This loader, delivering its batches on ``device``."""
        return self._remade(device=device)

    def shard(self, rank: int, world_size: int) -> IndexLoader:
        """Rank ``rank``'s share: what :func:`~luzwidget.core.distributed.shard_loader`
        makes of the equivalent DataLoader (a ``DistributedSampler``, shuffled if this
        loader is; no generator), taken by index."""
        sampler: DistributedSampler[Any] = DistributedSampler(
            self.dataset,
            num_replicas=world_size,
            rank=rank,
            shuffle=isinstance(self.sampler, RandomSampler),
        )
        return self._remade(sampler=sampler, generator=None)

    def _remade(self, **changes: Any) -> IndexLoader:
        kwargs: dict[str, Any] = {
            "drop_last": self.drop_last,
            "sampler": self.sampler,
            "generator": self.generator,
            "collate": self.collate_fn,
            "device": self.device,
            "pin_memory": self.pin_memory,
        }
        return IndexLoader(self.dataset, self.batch_size, **{**kwargs, **changes})

    def __repr__(self) -> str:
        order = type(self.sampler).__name__.removesuffix("Sampler").lower()
        where = "" if self.device is None else f" to {self.device}"
        return (
            f"<IndexLoader over {type(self.dataset).__name__}: {len(self)} batches of "
            f"{self.batch_size}, {order}{where}>"
        )


def _order(sampler: Sampler) -> torch.Tensor:
    """The epoch's positions, drawn as iterating ``sampler`` draws them."""
    if type(sampler) is RandomSampler:
        generator = sampler.generator
        if generator is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            generator = torch.Generator()
            generator.manual_seed(seed)
        return torch.randperm(len(sampler), generator=generator)
    if isinstance(sampler, DistributedSampler):
        return _shard_order(sampler)
    return torch.arange(len(sampler))


def _shard_order(sampler: DistributedSampler[Any]) -> torch.Tensor:
    """``DistributedSampler.__iter__`` on tensors: pad (or cut) to ``total_size``, then
    every ``num_replicas``-th position from ``rank``."""
    n = len(sampler.dataset)  # type: ignore[arg-type]
    if sampler.shuffle:
        g = torch.Generator()
        g.manual_seed(sampler.seed + sampler.epoch)
        indices = torch.randperm(n, generator=g)
    else:
        indices = torch.arange(n)
    total = sampler.total_size
    if total > n:  # padded with the first positions again, as often as it takes
        indices = indices.repeat(math.ceil(total / n))
    return indices[sampler.rank : total : sampler.num_replicas]


def _undrawn(a: int, b: int) -> Any:
    raise AssertionError("an epoch's order is drawn at its first batch")


class _Epoch:
    """One epoch of an :class:`IndexLoader`. Setting ``again`` makes the next call make the
    last batch again (a retry; see :func:`~luzwidget.core.data.epoch_batches`).

    ``order`` is the epoch's positions once drawn and ``got`` the 0-based number of the
    last batch made (-1: none yet): what ``ctx.indices`` reads (:meth:`positions`).
    """

    __slots__ = (
        "again",
        "batches",
        "failed",
        "fast",
        "fetch",
        "got",
        "k",
        "last",
        "loader",
        "order",
        "redraw_at",
        "size",
    )

    def __init__(self, loader: IndexLoader) -> None:
        self.loader = loader
        self.again = False
        self.k = self.last = 0
        self.got = -1
        self.failed = False  # a data fault's mark (see core.epochs.Replay); unused here
        self.order: torch.Tensor | None = None
        self.size = loader.batch_size
        self.batches = len(loader)
        self.fast = 0  # batches before this one are just slices (none before the order)
        self.fetch: Fetch = _undrawn
        # A RandomSampler with its own generator draws one more permutation when its pass
        # runs out (for its `num_samples % n` tail): at the call that ends the epoch, or at
        # the last batch where that is partial and kept.
        self.redraw_at = -1
        sampler = loader.sampler
        if type(sampler) is RandomSampler and sampler.generator is not None:
            partial = not loader.drop_last and len(sampler) % self.size
            self.redraw_at = self.batches - 1 if partial else self.batches

    def __iter__(self) -> _Epoch:
        return self

    def __next__(self) -> Any:
        k = self.k
        if k < self.fast and not self.again:
            self.k, self.last = k + 1, k
            a = k * self.size
            batch = self.fetch(a, a + self.size)
            self.got = k
            return batch
        return self._next()

    def _next(self) -> Any:
        """The first batch (the order is drawn), a retried one, the one that redraws, the end."""
        if self.again:
            self.again = False
            k = self.last
        else:
            k = self.k
            if self.fetch is _undrawn:
                self.order = _order(self.loader.sampler)
                self.fetch = self.loader._source.fetcher(self.order)
                self.fast = self.batches if self.redraw_at < 0 else self.redraw_at
            if k == self.redraw_at:
                sampler = self.loader.sampler
                torch.randperm(len(sampler), generator=sampler.generator)  # type: ignore[union-attr]
            if k >= self.batches:
                raise StopIteration
            self.k, self.last = k + 1, k
        a = k * self.size
        batch = self.fetch(a, a + self.size)
        self.got = k
        return batch

    def positions(self) -> torch.Tensor | None:
        """The positions in the dataset of the last batch made (None before the first)."""
        if self.order is None or self.got < 0:
            return None
        a = self.got * self.size
        return self.order[a : a + self.size]

    def clone(self) -> _Epoch:
        """A copy that goes on from where this one is (the drawn order is shared: it never
        changes): what a run restored inside an epoch iterates."""
        copy = _Epoch.__new__(_Epoch)
        for name in _Epoch.__slots__:
            setattr(copy, name, getattr(self, name))
        return copy
