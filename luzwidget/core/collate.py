"""Data of any structure as a Dataset: nested tensors (Keras' ``fit(((a, b), y))``), dicts of
tensors, map-style datasets that are not torch's (a Hugging Face ``datasets.Dataset``), and
the collate that stacks their dict samples."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from luzwidget.core.exceptions import DataError
from luzwidget.core.tensor_tree import TensorTree

__all__ = ["collate", "is_map_style", "is_structured", "structured"]

Leaf = Callable[[Any, str], torch.Tensor]


def is_map_style(data: Any) -> bool:
    """Whether ``data`` is a map-style dataset that is not a torch ``Dataset``: it has
    ``__getitem__`` and ``__len__`` and is not a list, tuple, string, dict or array (a
    Hugging Face ``datasets.Dataset``, a ``Subset`` of one, any sequence of samples)."""
    if isinstance(data, list | tuple | str | bytes | Mapping | torch.Tensor | np.ndarray):
        return False
    kind = type(data)
    return hasattr(kind, "__getitem__") and hasattr(kind, "__len__")


def _is_leaf(x: Any) -> bool:
    return isinstance(x, torch.Tensor | np.ndarray)


def is_structured(data: Any) -> bool:
    """Whether ``data`` is tensors in a structure: a tuple whose parts are tensors or
    arrays, or tuples, lists and dicts of them (not all plain: those are a TensorDataset),
    or a dict of them. A list is ready batches, as before."""
    if isinstance(data, Mapping):
        return bool(data) and all(_all_leaves(v) for v in data.values())
    if type(data) is not tuple or not 1 <= len(data) <= 3:
        return False
    return all(_all_leaves(part) for part in data) and not all(map(_is_leaf, data))


def _all_leaves(x: Any) -> bool:
    if _is_leaf(x):
        return True
    if isinstance(x, tuple | list):
        return bool(x) and all(_all_leaves(v) for v in x)
    if isinstance(x, Mapping):
        return bool(x) and all(_all_leaves(v) for v in x.values())
    return False


def _map(x: Any, fn: Callable[[Any, str], Any], where: str) -> Any:
    if _is_leaf(x):
        return fn(x, where)
    if isinstance(x, Mapping):
        return {k: _map(v, fn, f"{where}[{k!r}]") for k, v in x.items()}
    return type(x)(_map(v, fn, f"{where}[{i}]") for i, v in enumerate(x))


def _leaves(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    values = x.values() if isinstance(x, Mapping) else x
    return [leaf for v in values for leaf in _leaves(v)]


def structured(data: Any, as_tensor: Leaf, argument: str = "data") -> TensorTree:
    """Tensors in a structure as a Dataset: sample ``i`` is the structure with every tensor
    indexed at ``i`` (``((a[i], b[i]), y[i])``, ``{"input_ids": ids[i], ...}``); an
    :class:`~luzwidget.core.index_loader.IndexLoader` batches it by index.

    Parameters
    ----------
    data
        See :func:`is_structured`; numpy arrays become tensors (float64 as float32).
    as_tensor
        ``as_tensor(array, where)``: how an array becomes a tensor (and its error).
    argument
        The argument's name, for errors.

    Raises
    ------
    DataError
        If the tensors do not all have the same number of rows.
    """
    tensors = _map(data, as_tensor, argument)
    sizes = {len(t) for t in _leaves(tensors)}
    if len(sizes) > 1:
        raise DataError(
            f"{argument}: its tensors have different lengths {sorted(sizes)}; every "
            "tensor of the input and the target needs one row per sample, so their first "
            "dimensions must be equal."
        )
    return TensorTree(tensors)


def collate(samples: Sequence[Any]) -> Any:
    """Stack a list of samples into a batch; dict samples key by key.

    torch's ``default_collate``, except for a dict sample's values that are lists of
    numbers (a Hugging Face dataset's rows: ``input_ids``): those become one tensor per
    key, where ``default_collate`` would transpose them into one tensor per position.
    Lists of strings stay lists.

    Raises
    ------
    DataError
        If a key's sequences have different lengths (they need padding), naming the key
        and the fix.
    """
    if samples and isinstance(samples[0], Mapping):
        return {key: _column(key, [s[key] for s in samples]) for key in samples[0]}
    return default_collate(list(samples))


def _column(key: str, values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, Mapping):
        return collate(values)
    if isinstance(first, list | tuple) and _numbers(first):
        lengths = {len(v) for v in values}
        if len(lengths) > 1:
            raise DataError(
                f"the samples' {key!r} are sequences of different lengths "
                f"({min(lengths)} to {max(lengths)}), which cannot be stacked into one tensor. "
                "Pad them: pass dataloader_options={'collate_fn': "
                "DataCollatorWithPadding(tokenizer)} (transformers), or tokenize with "
                "padding='max_length'."
            )
        return torch.tensor(values)
    return default_collate(values)


def _numbers(seq: Sequence[Any]) -> bool:
    item = seq[0] if seq else 0
    while isinstance(item, list | tuple) and item:
        item = item[0]
    return isinstance(item, int | float | bool)
