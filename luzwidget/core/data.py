"""Turn what the user passes as data into something the loop can iterate over each epoch."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    TensorDataset,
    default_collate,
    random_split,
)

from luzwidget.core.batches import split_batch
from luzwidget.core.collate import collate, is_map_style, is_structured, structured
from luzwidget.core.exceptions import ConfigError, DataError
from luzwidget.core.index_loader import IndexLoader, sliceable
from luzwidget.core.report import report

__all__ = [
    "as_loader",
    "index_loader_of",
    "loader_len",
    "split_batch",
    "split_valid",
]

_ACCEPTED = (
    "a DataLoader, a Dataset (torch's, or any with __getitem__ and __len__, e.g. a Hugging "
    "Face datasets.Dataset), a tuple (input, target) of tensors or numpy arrays (each part "
    "may be a tuple or dict of them: ((a, b), y)), a dict of tensors, a single tensor or "
    "array (input only), or a list of ready batches"
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
    """``data`` as a Dataset when it is one (or map-style), tensors or arrays in a
    structure; None for other iterables."""
    if isinstance(data, Dataset) or is_map_style(data):
        return data  # type: ignore[no-any-return]
    if is_structured(data):
        return structured(data, _as_tensor, argument)
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


def _defaults(training: bool, iterable: bool) -> dict[str, Any]:
    """luz's loader defaults: batch 32; training shuffles and drops the last partial batch.

    An IterableDataset is never shuffled (it has no indices to draw) and keeps its last
    partial batch (its length may be unknown, so a dropped batch would go unnoticed).
    """
    shuffle = training and not iterable
    return {"batch_size": 32, "shuffle": shuffle, "drop_last": shuffle}


def as_loader(
    data: Any,
    *,
    training: bool,
    options: Mapping[str, Any] | None = None,
    argument: str = "data",
    ordered: str | None = None,
    empty_ok: bool = False,
) -> Iterable[Any]:
    """Return something the loop can iterate over once per epoch.

    Parameters
    ----------
    data
        A DataLoader (used as is), a Dataset (map-style or IterableDataset),
        tensors/arrays (see :func:`as_dataset`), or any re-iterable of ready batches
        (e.g. a list of ``(input, target)`` tuples). Tensors, a TensorDataset and a
        Dataset with ``__getitems__`` get an
        :class:`~luzwidget.core.index_loader.IndexLoader` (the DataLoader's batches,
        taken by index) unless ``options`` ask for what only a DataLoader does.
    training
        Training loaders shuffle and drop the last partial batch (an IterableDataset
        does neither); validation ones never do.
    options
        Keyword arguments for ``DataLoader``; they override the defaults.
    argument
        The argument's name, for error messages.
    ordered
        Where order is kept whatever the options say (e.g. ``"predict()"``): a
        ``shuffle=True`` in ``options`` is then ignored with a warning naming it.
    empty_ok
        Accept a loader of 0 batches (a fit of 0 epochs trains on nothing anyway).

    Raises
    ------
    ConfigError
        If ``options`` are given with a ready DataLoader, or DataLoader refuses them, or
        a training epoch would have no batch.
    DataError
        If ``data`` is none of the accepted kinds, empty, or a one-shot iterator.
    """
    if isinstance(data, DataLoader | IndexLoader):
        if options:
            raise ConfigError(
                f"dataloader_options={dict(options)!r} cannot be applied to {argument}, which is "
                "already a DataLoader. Either pass the Dataset (or tensors) and keep "
                "dataloader_options, or build the DataLoader with those options yourself."
            )
        return data if empty_ok else _check_batches(data, argument, training)
    dataset = as_dataset(data, argument)
    if dataset is not None:
        loader = _loader(dataset, training, options, argument, ordered)
        return loader if empty_ok else _check_batches(loader, argument)
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
        return data if empty_ok else _check_batches(data, argument, training)
    raise DataError(f"{argument} must be {_ACCEPTED}; got {type(data).__name__}: {data!r:.80}.")


def _loader(
    dataset: Dataset[Any],
    training: bool,
    options: Mapping[str, Any] | None,
    argument: str,
    ordered: str | None,
) -> DataLoader[Any] | IndexLoader:
    """A DataLoader over ``dataset`` with the defaults, ``options`` over them, checked;
    as an :class:`~luzwidget.core.index_loader.IndexLoader` (the same batches, taken by
    index) where nothing in it needs a DataLoader."""
    iterable = isinstance(dataset, IterableDataset)
    if not iterable and loader_len(dataset) == 0:
        raise DataError(
            f"{argument} is an empty {type(dataset).__name__} (0 samples); there is nothing to "
            "train on or predict. Check how it was built (a filter or split that kept nothing?)."
        )
    kwargs = _defaults(training, iterable)
    given = dict(options or {})
    if ordered and given.get("shuffle"):
        warnings.warn(
            f"dataloader_options={{'shuffle': {given['shuffle']!r}}} is ignored for {ordered}: "
            "outputs come in the order of the data. Drop 'shuffle' from dataloader_options.",
            UserWarning,
            stacklevel=4,
        )
    if not training:
        given.pop("shuffle", None)
    kwargs.update(given)
    if "collate_fn" not in given and _foreign(dataset):
        kwargs["collate_fn"] = collate  # rows of lists (input_ids) stack into tensors
    if "drop_last" not in given:
        _keep_short_batch(dataset, kwargs, argument)
    if iterable and kwargs.get("shuffle"):
        raise ConfigError(
            f"dataloader_options={given!r}: {argument} is an IterableDataset "
            f"({type(dataset).__name__}), which DataLoader cannot shuffle (it has no indices "
            "to draw). Drop 'shuffle', or shuffle inside the dataset's __iter__."
        )
    _check_batch_size(kwargs.get("batch_size"), given)
    try:
        loader = DataLoader(dataset, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"dataloader_options={given!r} for {argument}: DataLoader refused them: "
            f"{str(exc).rstrip('.')}. "
            "Pass only DataLoader keyword arguments with valid values, e.g. "
            "dataloader_options={'batch_size': 64, 'num_workers': 2}."
        ) from exc
    return index_loader_of(loader, given.get("pin_memory"))


def _foreign(dataset: Any) -> bool:
    """Whether ``dataset`` (or the dataset under its Subsets) is not a torch Dataset."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return not isinstance(dataset, Dataset)


def _keep_short_batch(dataset: Any, kwargs: dict[str, Any], argument: str) -> None:
    """A training set smaller than one batch keeps its one partial batch (said once),
    where dropping it would leave an epoch of nothing (as Keras and Lightning do)."""
    n, size = loader_len(dataset), kwargs.get("batch_size")
    if not kwargs.get("drop_last") or not n or not isinstance(size, int) or n >= size:
        return
    kwargs["drop_last"] = False
    report(
        f"{argument} has {n} samples, fewer than batch_size={size}: the last (partial) batch "
        f"is kept, so an epoch trains on one batch of {n}. Pass dataloader_options="
        f"{{'batch_size': ...}} to choose another size."
    )


def _check_batch_size(batch_size: Any, given: Mapping[str, Any]) -> None:
    if batch_size is None or "batch_sampler" in given:
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(
            f"dataloader_options={dict(given)!r}: batch_size must be a positive int, got "
            f"{batch_size!r}. Pass e.g. dataloader_options={{'batch_size': 32}}."
        )


def _check_batches(loader: Iterable[Any], argument: str, training: bool = True) -> Iterable[Any]:
    """``loader``, unless it has a length of 0 batches (then say why and how to fix it)."""
    if loader_len(loader) != 0:
        return loader
    samples = loader_len(getattr(loader, "dataset", None))
    size = getattr(loader, "batch_size", None)
    if samples and size and getattr(loader, "drop_last", False):
        raise ConfigError(
            f"{argument} has {samples} samples, fewer than batch_size={size}, and the last "
            "partial batch is dropped (drop_last=True, the default for training), so an epoch "
            f"would have 0 batches. Pass dataloader_options={{'batch_size': {samples}}} (or "
            "smaller), or {'drop_last': False}."
        )
    raise DataError(
        f"{argument} ({type(loader).__name__}) has 0 batches: "
        + ("an epoch would train on nothing." if training else "there is nothing to run on.")
        + " Pass data with at least one batch."
    )


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
    dataset = None if isinstance(data, DataLoader | IndexLoader) else as_dataset(data)
    if isinstance(dataset, IterableDataset):
        raise ConfigError(
            f"valid_data={fraction} splits data at random, but data is an IterableDataset "
            f"({type(data).__name__}): it has no indices to draw from. Split it yourself and "
            "pass valid_data=<validation data> (e.g. a second IterableDataset)."
        )
    n = None if dataset is None else loader_len(dataset)
    if dataset is None or n is None:
        raise ConfigError(
            f"valid_data={fraction} splits a Dataset or tensors, but data is a "
            f"{type(data).__name__}. Split it yourself and pass valid_data=<validation data>."
        )
    n_valid = round(n * fraction)
    if n_valid < 1 or n_valid >= n:
        raise ConfigError(
            f"valid_data={fraction} of {n} samples leaves {n_valid} for validation and "
            f"{n - n_valid} for training; both need at least one."
        )
    train, valid = random_split(dataset, [n - n_valid, n_valid])
    return train, valid


def loader_len(data: Any) -> int | None:
    """Number of batches of ``data`` per epoch, or None when it has no length.

    ``len()`` raising TypeError (an IterableDataset without ``__len__``, a generator
    wrapper) means no length; so does a negative or non-int answer.
    """
    try:
        n = len(data)
    except TypeError:
        return None
    return n if isinstance(n, int) and n >= 0 else None


def index_loader_of(
    loader: DataLoader[Any], pin_memory: bool | None = None
) -> IndexLoader | DataLoader[Any]:
    """``loader`` as an :class:`IndexLoader` giving the same batches where nothing in it
    needs a DataLoader; else ``loader`` itself.

    It qualifies with a TensorDataset or TensorTree (also inside Subsets) or a Dataset
    with ``__getitems__``; no workers, torch's ``default_collate``, its own default
    sampler (sequential, or random without replacement) and batch sampler, no timeout.
    ``pin_memory``: the option as given (None: not given).
    """
    sampler = loader.sampler
    plain_sampler = type(sampler) is SequentialSampler or (
        type(sampler) is RandomSampler and not sampler.replacement and sampler._num_samples is None
    )
    qualifies = (
        plain_sampler
        and loader.batch_size is not None
        and type(loader.batch_sampler) is BatchSampler
        and loader.num_workers == 0
        and loader.collate_fn is default_collate
        and loader.timeout == 0
        and sliceable(loader.dataset)
    )
    if not qualifies:
        return loader
    return IndexLoader(
        loader.dataset,
        loader.batch_size,  # type: ignore[arg-type]  # checked above
        drop_last=loader.drop_last,
        sampler=sampler,  # type: ignore[arg-type]  # checked above
        generator=loader.generator,
        pin_memory=pin_memory,
    )
