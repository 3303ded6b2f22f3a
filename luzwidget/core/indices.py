"""The dataset indices of the batch the loop is at (``ctx.indices``): read, never drawn.

The loop keeps, per pass over the data, where its batches come from
(``engine.source``, a :class:`BatchSource`): the loader's dataset and the iterator state
that knows which samples the current batch holds. Nothing is computed per batch; asking
``ctx.indices`` reads that state:

- an :class:`~luzwidget.core.index_loader.IndexLoader` (tensors, a ``TensorDataset``, a
  Dataset with ``__getitems__``): its epoch's drawn order, sliced at the last batch made;
- a DataLoader over a map-style Dataset with ``num_workers=0``: the indices its batch
  sampler drew for the batch delivered (the loop already wraps that sampler iterator so
  a retry loads the same batch again: :class:`~luzwidget.core.epochs.Replay`);
- anything else (an IterableDataset, workers, a list of ready batches): None.

So the indices follow any sampler and shuffle, a retried batch, a skipped one and a
rewind, and reading them changes no batch and draws no random number. They are indices
of the dataset under any ``Subset`` (such as the split ``valid_data=0.2`` makes): for
``fit((X, y), valid_data=0.2)``, ``X[ctx.indices]`` is the batch's input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Subset

__all__ = ["BatchSource", "batch_indices", "root_indices", "source_of"]


@dataclass(frozen=True)
class BatchSource:
    """Where a pass's batches come from: the loader's ``dataset`` and the iterator
    ``state`` that knows the current batch (an IndexLoader's epoch, a DataLoader's
    :class:`~luzwidget.core.epochs.Replay`, or None)."""

    dataset: Any
    state: Any


def source_of(loader: Any, state: Any) -> BatchSource:
    """The :class:`BatchSource` of a pass over ``loader`` iterated with ``state``."""
    inner = getattr(loader, "loader", loader)  # a loader the accelerator moves to a device
    return BatchSource(getattr(inner, "dataset", None), state)


def batch_indices(source: BatchSource | None) -> torch.Tensor | None:
    """The indices (int64, in the dataset under any Subset) of the current batch, or None
    where the loader cannot tell them."""
    if source is None or source.state is None:
        return None
    state = source.state
    positions = getattr(state, "positions", None)
    if positions is not None:
        drawn = positions()
    else:
        drawn = state.delivered()
        if drawn is not None:
            drawn = torch.as_tensor(list(drawn), dtype=torch.int64)
    if drawn is None:
        return None
    return root_indices(source.dataset, drawn)


def root_indices(dataset: Any, indices: torch.Tensor) -> torch.Tensor:
    """``indices`` of ``dataset`` as indices of the dataset under its Subsets."""
    out = indices.to("cpu", torch.int64)
    while isinstance(dataset, Subset):
        out = torch.as_tensor(dataset.indices, dtype=torch.int64)[out]
        dataset = dataset.dataset
    return out.clone()  # the caller's own: a view of the epoch's order must not be written
