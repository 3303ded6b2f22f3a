"""Turn what the user passes as data into something the loop can iterate over each epoch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset, random_split

from luzwidget.exceptions import ConfigError, DataError

__all__ = ["as_loader", "loader_len", "split_batch", "split_valid"]

_ACCEPTED = (
    "a DataLoader, a Dataset, a tuple (input, target) of tensors or numpy arrays, a single "
    "tensor or array (input only), or a list of ready batches"
)


def _as_tensor(value: Any, argument: str) -> torch.Tensor:
    """A numpy array or tensor as a tensor; float64 arrays become float32 (what nn.Linear uses)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        return tensor.float() if tensor.dtype == torch.float64 else tensor
    raise DataError(
        f"{argument}: expected tensors or numpy arrays, got {type(value).__name__}. "
        f"Pass {_ACCEPTED}."
    )


def _is_array(value: Any) -> bool:
    return isinstance(value, torch.Tensor | np.ndarray)


def as_dataset(data: Any, argument: str = "data") -> Dataset[Any] | None:
    """``data`` as a Dataset when it is one, tensors or arrays; None for other iterables."""
    if isinstance(data, Dataset):
        return data
    if _is_array(data):
        return TensorDataset(_as_tensor(data, argument))
    if isinstance(data, tuple | list) and 1 <= len(data) <= 3 and all(map(_is_array, data)):
        tensors = [_as_tensor(x, f"{argument}[{i}]") for i, x in enumerate(data)]
        sizes = [len(t) for t in tensors]
        if len(set(sizes)) > 1:
            raise DataError(
                f"{argument}: the tensors have different lengths {sizes}; input and target "
                "need one row per sample, so their first dimensions must be equal."
            )
        return TensorDataset(*tensors)
    return None


def _defaults(training: bool) -> dict[str, Any]:
    """luz's loader defaults: batch 32; training shuffles and drops the last partial batch."""
    return {"batch_size": 32, "shuffle": training, "drop_last": training}


def as_loader(
    data: Any,
    *,
    training: bool,
    options: Mapping[str, Any] | None = None,
    argument: str = "data",
) -> Iterable[Any]:
    """Return something the loop can iterate over once per epoch.

    Parameters
    ----------
    data
        A DataLoader (used as is), a Dataset, tensors/arrays (see :func:`as_dataset`), or
        any re-iterable of ready batches (e.g. a list of ``(input, target)`` tuples).
    training
        Training loaders shuffle and drop the last partial batch; validation ones never do.
    options
        Keyword arguments for ``DataLoader``; they override the defaults.

    Raises
    ------
    ConfigError
        If ``options`` are given with a ready DataLoader.
    DataError
        If ``data`` is none of the accepted kinds, or a one-shot iterator.
    """
    if isinstance(data, DataLoader):
        if options:
            raise ConfigError(
                f"dataloader_options={dict(options)!r} cannot be applied to {argument}, which is "
                "already a DataLoader. Either pass the Dataset (or tensors) and keep "
                "dataloader_options, or build the DataLoader with those options yourself."
            )
        return data
    dataset = as_dataset(data, argument)
    if dataset is not None:
        kwargs = _defaults(training)
        if not training:
            kwargs["shuffle"] = False
        kwargs.update(options or {})
        if not training and kwargs.get("shuffle"):
            kwargs["shuffle"] = False
        try:
            return DataLoader(dataset, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"dataloader_options: {exc}") from None
    if isinstance(data, Iterator):
        raise DataError(
            f"{argument} is a one-shot iterator ({type(data).__name__}); it would be empty "
            f"after the first epoch. Pass {_ACCEPTED}."
        )
    if isinstance(data, Iterable) and not isinstance(data, str | bytes | Mapping):
        if options:
            raise ConfigError(
                f"dataloader_options cannot be applied to {argument}, a {type(data).__name__} of "
                "ready batches. Pass a Dataset or tensors to have a DataLoader built."
            )
        return data
    raise DataError(f"{argument} must be {_ACCEPTED}; got {type(data).__name__}: {data!r:.80}.")


def split_valid(data: Any, fraction: Any) -> tuple[Dataset[Any], Dataset[Any]]:
    """Split ``data`` at random into (train, valid) datasets, ``fraction`` going to valid.

    Raises
    ------
    ConfigError
        If ``fraction`` is not in (0, 1), or ``data`` cannot be split.
    """
    if isinstance(fraction, bool) or not 0 < fraction < 1:
        raise ConfigError(
            f"valid_data={fraction!r}: a number is the fraction of data held out for "
            "validation and must be strictly between 0 and 1, e.g. valid_data=0.2."
        )
    dataset = None if isinstance(data, DataLoader) else as_dataset(data)
    if dataset is None:
        raise ConfigError(
            f"valid_data={fraction} splits a Dataset or tensors, but data is a "
            f"{type(data).__name__}. Split it yourself and pass valid_data=<validation data>."
        )
    n = len(dataset)  # type: ignore[arg-type]
    n_valid = round(n * fraction)
    if n_valid < 1 or n_valid >= n:
        raise ConfigError(
            f"valid_data={fraction} of {n} samples leaves {n_valid} for validation and "
            f"{n - n_valid} for training; both need at least one."
        )
    train, valid = random_split(dataset, [n - n_valid, n_valid])
    return train, valid


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``(input, target)`` of a batch: ``batch[0], batch[1]`` for tuples and lists.

    A lone tensor (or any other object) is the input, with no target.
    """
    kind = type(batch)
    if kind is tuple or kind is list:
        n = len(batch)
        if n >= 2:
            return batch[0], batch[1]
        if n == 1:
            return batch[0], None
    return batch, None


def loader_len(data: Any) -> int | None:
    """Number of batches of ``data`` per epoch, or None when it has no length."""
    try:
        return len(data)
    except TypeError:
        return None
