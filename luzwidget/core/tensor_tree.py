"""Tensors in any structure (tuples, lists, dicts, nested) that share their first dimension.

What an :class:`~luzwidget.core.index_loader.IndexLoader` slices: a ``TensorDataset``'s
tensors, or the inputs and targets of a several-input model (``((a, b), y)``,
``{"ids": ..., "mask": ...}``) kept in their structure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.utils.data import Dataset

from luzwidget.core.exceptions import DataError

__all__ = ["Build", "TensorTree", "flatten", "take"]

Build = Callable[[list[torch.Tensor]], Any]
"""Rebuilds a structure from new tensors, given in the order :func:`flatten` found them."""


def flatten(tree: Any, leaves: list[torch.Tensor]) -> Build:
    """Append the tensors of ``tree`` to ``leaves``; return what rebuilds it from new ones.

    Tuples, lists and dicts keep their type (a namedtuple too).

    Raises
    ------
    DataError
        If ``tree`` holds anything but tensors, tuples, lists and dicts.
    """
    kind: Any = type(tree)
    if isinstance(tree, torch.Tensor):
        at = len(leaves)
        leaves.append(tree)
        return lambda new: new[at]
    if isinstance(tree, Mapping):
        keys = list(tree)
        parts = [flatten(tree[k], leaves) for k in keys]
        return lambda new: kind(zip(keys, (p(new) for p in parts), strict=True))
    if isinstance(tree, tuple | list):
        parts = [flatten(v, leaves) for v in tree]
        if hasattr(tree, "_fields"):  # a namedtuple
            return lambda new: kind(*(p(new) for p in parts))
        return lambda new: kind(p(new) for p in parts)
    raise DataError(
        f"in-memory data: expected tensors in tuples, lists or dicts, got a "
        f"{type(tree).__name__}. Convert it to a tensor first (torch.as_tensor)."
    )


def take(tree: Any, index: torch.Tensor | int) -> Any:
    """``tree`` with each tensor's rows ``index`` (an int: one row; a tensor: a batch)."""
    leaves: list[torch.Tensor] = []
    build = flatten(tree, leaves)
    if isinstance(index, int):
        return build([t[index] for t in leaves])
    return build([t.index_select(0, index.to(t.device)) for t in leaves])


class TensorTree(Dataset[Any]):
    """A map-style Dataset of tensors in any structure sharing their first dimension.

    Sample ``i`` is the structure holding each tensor's row ``i``. An
    :class:`~luzwidget.core.index_loader.IndexLoader` over it yields the structure with each
    tensor's batch rows (a DataLoader's ``default_collate`` would make lists of its tuples).

    Raises
    ------
    DataError
        If the structure holds something other than tensors, no tensor at all, a 0-d
        tensor, or tensors whose first dimensions differ.

    Examples
    --------
    >>> tree = TensorTree(((torch.zeros(5, 2), torch.ones(5)), torch.arange(5)))
    >>> len(tree), take(tree.tree, torch.tensor([4, 0]))[1].tolist()
    (5, [4, 0])
    """

    def __init__(self, tree: Any) -> None:
        leaves: list[torch.Tensor] = []
        flatten(tree, leaves)
        sizes = [len(t) if t.dim() else None for t in leaves]
        if not leaves or None in sizes or len(set(sizes)) > 1:
            raise DataError(
                "in-memory data: every tensor needs one row per sample, so the same first "
                f"dimension; got first dimensions {sizes}."
            )
        self.tree = tree
        self.length = int(sizes[0] or 0)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Any:
        return take(self.tree, i)
