"""Where training runs: device choice, moving the model and optimizers, placing batches."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch

from luzwidget.core import distributed
from luzwidget.core.exceptions import ConfigError
from luzwidget.core.index_loader import IndexLoader

__all__ = ["Accelerator", "to_device"]


def to_device(value: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move every tensor in ``value`` (nested tuples, lists and dicts) to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=non_blocking)
    kind = type(value)
    if kind is tuple or kind is list:
        return kind(to_device(v, device, non_blocking) for v in value)
    if isinstance(value, Mapping):
        moved = {k: to_device(v, device, non_blocking) for k, v in value.items()}
        try:
            return type(value)(moved)  # type: ignore[call-arg]  # the subclass's constructor
        except TypeError:  # e.g. defaultdict, whose constructor wants a factory first
            return moved
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # namedtuple
        return kind(*(to_device(v, device, non_blocking) for v in value))
    to = getattr(value, "to", None)  # an object that moves itself: a PyG Data, a BatchEncoding
    if callable(to) and not isinstance(value, torch.nn.Module | type):
        try:
            return to(device, non_blocking=non_blocking)
        except TypeError:  # a .to() without non_blocking
            return to(device)
    return value


def _check_processes(processes: Any, strategy: str | None) -> None:
    if processes is None:
        return
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 2:
        raise ConfigError(
            f"processes must be an int >= 2 (how many worker processes to launch) or None, "
            f"got {processes!r}. For one process leave it out."
        )
    if strategy is None:
        raise ConfigError(
            f"processes={processes} launches data-parallel workers, but strategy=None asks for "
            "one process. Pass strategy='ddp' (or 'auto'), or leave processes out."
        )


def _check_devices(processes: Any, device: torch.device) -> None:
    """On CUDA each launched worker takes its own device (``LOCAL_RANK``)."""
    if device.type != "cuda" or processes <= torch.cuda.device_count():
        return
    raise ConfigError(
        f"processes={processes}: each worker trains on its own CUDA device, but only "
        f"{torch.cuda.device_count()} is visible. Pass processes={torch.cuda.device_count()} "
        "or fewer, or cpu=True to train on the CPU."
    )


class _DeviceLoader:
    """Wraps a loader so each batch arrives on the device; len() and attributes pass through."""

    def __init__(self, loader: Iterable[Any], device: torch.device) -> None:
        self.loader = loader
        self.device = device
        self.non_blocking = device.type == "cuda"

    def __iter__(self) -> Iterator[Any]:
        device, non_blocking = self.device, self.non_blocking
        for batch in self.loader:
            yield to_device(batch, device, non_blocking)

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]  # unsized: TypeError, as len(loader)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def __repr__(self) -> str:
        return f"<{type(self.loader).__name__} on {self.device}>"


class Accelerator:
    """Choose a device and put the model, optimizers and batches on it (luz's ``accelerator``).

    Parameters
    ----------
    device_placement
        Move the model and each batch to the device. With False nothing is moved.
    cpu
        Use the CPU even when an accelerator is available.
    cuda_index
        Which CUDA device (default: the current one; under DDP, ``LOCAL_RANK``'s).
    strategy
        ``"auto"`` (the default): DDP when launched with several processes (torchrun,
        ``WORLD_SIZE`` above 1) or inside an initialised process group, else one process.
        ``"ddp"``: DDP, or an error naming what is missing. None: one process, always.
    find_unused_parameters
        Passed to ``DistributedDataParallel`` (True when some parameters get no gradient).
    shard_data
        Give each rank its shard of the training and validation data (a DistributedSampler).
        False: each rank iterates the loaders as given (shard them yourself).
    timeout_s
        How long a collective waits for a missing rank before it raises.
    processes
        None (the default), or how many worker processes (int >= 2) ``run()`` launches
        on this machine for data-parallel training, without torchrun (see
        :mod:`luzwidget.launch`). Inside those workers (or under torchrun) it is ignored.

    Notes
    -----
    Under DDP, ``ctx.model`` is the ``DistributedDataParallel`` wrapper (its forward
    synchronises the gradients); the user's module is ``ctx.model.module`` and checkpoints
    hold its ``state_dict``, so they load in one process. ``world`` is the
    :class:`~luzwidget.core.distributed.World` (None in one process).

    Examples
    --------
    >>> Accelerator(cpu=True).device
    device(type='cpu')
    """

    def __init__(
        self,
        device_placement: bool = True,
        cpu: bool = False,
        cuda_index: int | None = None,
        strategy: str | None = "auto",
        find_unused_parameters: bool = False,
        shard_data: bool = True,
        timeout_s: float = distributed.DEFAULT_TIMEOUT_S,
        processes: int | None = None,
    ) -> None:
        if cuda_index is not None and (not isinstance(cuda_index, int) or cuda_index < 0):
            raise ConfigError(f"cuda_index must be a non-negative int or None, got {cuda_index!r}.")
        if strategy not in ("auto", "ddp", None):
            raise ConfigError(
                f"strategy must be 'auto', 'ddp' or None, got {strategy!r}. 'auto' uses DDP "
                "when launched with several processes (torchrun)."
            )
        _check_processes(processes, strategy)
        self.processes = processes
        self.options: dict[str, Any] = {
            "device_placement": device_placement,
            "cpu": cpu,
            "cuda_index": cuda_index,
            "strategy": "ddp",
            "find_unused_parameters": find_unused_parameters,
            "shard_data": shard_data,
            "timeout_s": timeout_s,
        }  # what each launched worker builds its own Accelerator from
        self.device_placement = bool(device_placement)
        self.cpu = bool(cpu)
        self.cuda_index = cuda_index
        self.strategy = strategy
        self.find_unused_parameters = bool(find_unused_parameters)
        self.shard_data = bool(shard_data)
        self.world: distributed.World | None = None
        if self.launches:
            self.device = self._choose()  # this process launches the workers; it trains nothing
            _check_devices(self.processes, self.device)
        elif distributed.wanted(strategy):
            self.world = distributed.init_from_env(timeout_s=timeout_s, cpu=cpu)
            self.device = self.world.device
        else:
            self.device = self._choose()

    @property
    def launches(self) -> bool:
        """True when ``processes`` asks this process (not itself a worker) to launch workers."""
        return self.processes is not None and "WORLD_SIZE" not in os.environ

    @property
    def rank(self) -> int:
        """This process's rank (0 in one process)."""
        return 0 if self.world is None else self.world.rank

    @property
    def world_size(self) -> int:
        """How many processes train together (1 in one process)."""
        return 1 if self.world is None else self.world.world_size

    def _choose(self) -> torch.device:
        if self.cpu:
            return torch.device("cpu")
        if torch.cuda.is_available():
            index = torch.cuda.current_device() if self.cuda_index is None else self.cuda_index
            if index >= torch.cuda.device_count():
                raise ConfigError(
                    f"cuda_index={index}, but only {torch.cuda.device_count()} CUDA device(s) "
                    "are visible."
                )
            return torch.device("cuda", index)
        if self.cuda_index is not None:
            raise ConfigError(f"cuda_index={self.cuda_index} was given, but CUDA is not available.")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move ``model`` to the device (in place; parameters keep their identity); under
        DDP, return it wrapped in ``DistributedDataParallel`` (once)."""
        if self.device_placement:
            model.to(self.device)
        world = self.world
        if world is None or isinstance(model, torch.nn.parallel.DistributedDataParallel):
            return model
        ids = [world.device.index] if world.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=self.find_unused_parameters
        )

    def prepare_optimizers(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
        """Move optimizer state (e.g. Adam's moments) to where its parameters are."""
        if not self.device_placement:
            return
        for opt in optimizers.values():
            for state in opt.state.values():
                for key, value in state.items():
                    if isinstance(value, torch.Tensor) and key != "step":
                        state[key] = value.to(self.device)

    def prepare_loader(
        self, loader: Iterable[Any] | None, argument: str = "data", shard: bool = True
    ) -> Iterable[Any] | None:
        """Wrap ``loader`` so batches arrive on the device (a no-op on the CPU; an
        :class:`~luzwidget.core.index_loader.IndexLoader` moves its own); under DDP (and
        ``shard``), first re-make it with a DistributedSampler (see
        :func:`~luzwidget.core.distributed.shard_loader`)."""
        world = self.world
        if (
            world is not None
            and shard
            and self.shard_data
            and not isinstance(loader, _DeviceLoader)
        ):
            loader = distributed.shard_loader(loader, world, argument)
        if loader is None or not self.device_placement or self.device.type == "cpu":
            return loader
        if isinstance(loader, IndexLoader):  # slices on the data's device, then moved
            return loader if loader.device == self.device else loader.to(self.device)
        if isinstance(loader, _DeviceLoader):
            return (
                loader
                if loader.device == self.device
                else _DeviceLoader(loader.loader, self.device)
            )
        return _DeviceLoader(loader, self.device)

    def __repr__(self) -> str:
        ddp = "" if self.world is None else f", rank={self.rank}/{self.world_size}"
        return f"Accelerator(device={self.device}, device_placement={self.device_placement}{ddp})"
