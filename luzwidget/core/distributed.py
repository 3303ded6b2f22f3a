"""Several processes: the process group, each rank's device, DDP and each rank's data shard.

Everything here is torch's own machinery (``torch.distributed``, ``DistributedDataParallel``,
``DistributedSampler``); luzwidget adds no launcher and no communication layer. The one
entry point that sets a process up is :func:`init_from_env`: given the variables ``torchrun``
(or any launcher) sets, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``, it initialises the default process group (gloo on CPU, nccl on CUDA,
``init_method="env://"``) unless the script did already, and returns the :class:`World`.
With one process (no ``WORLD_SIZE`` above 1, no group) nothing here runs.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
)

from luzwidget.core.exceptions import ConfigError
from luzwidget.core.index_loader import IndexLoader

__all__ = [
    "World",
    "barrier",
    "connect",
    "init_from_env",
    "is_main",
    "shard_loader",
    "unwrap",
    "wanted",
]

DEFAULT_TIMEOUT_S = 300.0
"""How long a collective waits for a missing rank before it fails (a dead rank never hangs)."""


@dataclass(frozen=True)
class World:
    """Where this process stands in the group: its rank, the group's size, its device.

    ``store`` is the process group's key-value store (a TCPStore under torchrun), which
    the ranks use to agree on commands (see :mod:`luzwidget.parallel.lockstep`); ``prefix``
    separates the keys of one torchrun restart from those of the last.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    store: Any
    prefix: str

    @property
    def main(self) -> bool:
        """True on rank 0, which prints, logs, checkpoints and accepts commands."""
        return self.rank == 0


def wanted(strategy: str | None) -> bool:
    """True when ``strategy`` asks for DDP here: ``"ddp"``, or ``"auto"`` under a launcher
    (``WORLD_SIZE`` above 1) or in a process group already initialised."""
    if strategy is None:
        return False
    if strategy == "ddp":
        return True
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def init_from_env(
    backend: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S, cpu: bool = False
) -> World:
    """Join the default process group (initialising it from the environment when the script
    has not) and return this process's :class:`World`.

    Parameters
    ----------
    backend
        ``"gloo"`` or ``"nccl"``; None: nccl when CUDA is available (and not ``cpu``), else gloo.
    timeout_s
        How long a collective waits for the other ranks before it raises.
    cpu
        Train on the CPU even where CUDA is available.

    Raises
    ------
    ConfigError
        If torch.distributed is unavailable, or the environment does not say where the group
        meets (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``).
    """
    if not dist.is_available():
        raise ConfigError(
            "Accelerator(strategy='ddp'): this torch build has no torch.distributed. Install a "
            "torch with distributed support, or pass strategy=None."
        )
    cuda = torch.cuda.is_available() and not cpu
    store = None
    if not dist.is_initialized():
        missing = [
            k for k in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE") if k not in os.environ
        ]
        if missing:
            raise ConfigError(
                f"Accelerator(strategy='ddp'): the environment lacks {', '.join(missing)}, so "
                "there is no process group to join. Launch the script with torchrun (e.g. "
                "torchrun --nproc_per_node=2 train.py), or call "
                "torch.distributed.init_process_group() first, or pass strategy='auto'."
            )
        rank = int(os.environ["RANK"])
        agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
        store = connect(timeout_s, host=not agent and rank == 0)
        dist.init_process_group(
            backend or ("nccl" if cuda else "gloo"),
            store=store,
            rank=rank,
            world_size=int(os.environ["WORLD_SIZE"]),
            timeout=datetime.timedelta(seconds=timeout_s),
        )
    rank, size = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", rank % max(torch.cuda.device_count(), 1)))
    if cuda:
        torch.cuda.set_device(local)
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if store is None and "MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ:
        store = connect(timeout_s)  # the script initialised the group: a client of its store
    if store is None:
        store = dist.distributed_c10d._get_default_store()
    prefix = f"luzwidget/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/"
    return World(rank, size, local, device, store, prefix)


def connect(timeout_s: float, host: bool = False) -> Any:
    """A connection to the store at ``MASTER_ADDR:MASTER_PORT`` (torchrun's; with
    ``host``, this process serves it), its keys under this restart's own prefix.

    The group is initialised through it rather than through ``env://``: after torchrun
    restarts a group (``--max-restarts``), gloo under ``env://`` was seen to read the
    previous attempt's addresses and fail to connect (torch 2.13); one prefix per attempt
    (``TORCHELASTIC_RESTART_COUNT``) keeps the attempts apart.
    """
    timeout = datetime.timedelta(seconds=timeout_s)
    base = dist.TCPStore(  # type: ignore[attr-defined]
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=host, timeout=timeout
    )
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"luzwidget/attempt_{attempt}/", base)  # type: ignore[attr-defined]


def unwrap(model: Any) -> Any:
    """The user's module inside a DistributedDataParallel wrapper (else ``model`` itself).

    A ``torch.compile`` wrapper is kept (predict, evaluate and a module's own ``step`` run
    compiled); :func:`luzwidget.core.compiled.original` goes through both.
    """
    inner = getattr(model, "module", None)
    if isinstance(model, torch.nn.parallel.DistributedDataParallel) and inner is not None:
        return inner
    return model


def is_main() -> bool:
    """True in a single process, and on rank 0 of a process group."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def barrier() -> None:
    """Wait for every rank (a no-op in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


# -- each rank's shard of the data -------------------------------------------------------


def shard_loader(loader: Iterable[Any] | None, world: World, argument: str) -> Any:
    """``loader`` re-made with a :class:`DistributedSampler`, so each rank gets its shard.

    A DataLoader over a map-style Dataset with its default sampler (sequential, or random
    for ``shuffle=True``) and default batch sampler is re-made with the same
    ``batch_size``, ``drop_last``, ``collate_fn``, ``num_workers`` and the rest; shuffling
    moves into the sampler (seeded identically on every rank, reshuffled by ``set_epoch``).
    An :class:`~luzwidget.core.index_loader.IndexLoader` takes the same indices by index.

    Raises
    ------
    ConfigError
        For a loader that cannot be sharded: an IterableDataset, a custom sampler or batch
        sampler, or ready batches that are not a DataLoader; the message names ``argument``
        and the fix.
    """
    if loader is None or isinstance(getattr(loader, "sampler", None), DistributedSampler):
        return loader
    if isinstance(loader, IndexLoader):
        return loader.shard(world.rank, world.world_size)
    fix = (
        "Pass a map-style Dataset (or tensors) and let luzwidget shard it, or shard the data "
        "yourself per rank (ctx.rank, ctx.world_size) and pass Accelerator(shard_data=False)."
    )
    if not isinstance(loader, DataLoader):
        raise ConfigError(
            f"{argument} is a {type(loader).__name__} of ready batches, which cannot be split "
            f"between the {world.world_size} processes. {fix}"
        )
    if isinstance(loader.dataset, IterableDataset):
        raise ConfigError(
            f"{argument} is a DataLoader over an IterableDataset "
            f"({type(loader.dataset).__name__}), which a DistributedSampler cannot shard. {fix}"
        )
    sampler = loader.sampler
    if type(sampler) not in (RandomSampler, SequentialSampler) or type(
        loader.batch_sampler
    ) not in (BatchSampler, type(None)):
        raise ConfigError(
            f"{argument} is a DataLoader with its own sampler ({type(sampler).__name__}, batch "
            f"sampler {type(loader.batch_sampler).__name__}); it cannot be re-made with a "
            f"DistributedSampler without changing what it draws. {fix}"
        )
    shuffle = isinstance(sampler, RandomSampler)
    shard: DistributedSampler[Any] = DistributedSampler(
        loader.dataset, num_replicas=world.world_size, rank=world.rank, shuffle=shuffle
    )
    extra: dict[str, Any] = {}
    if loader.num_workers > 0:
        extra = {
            "prefetch_factor": loader.prefetch_factor,
            "persistent_workers": loader.persistent_workers,
        }
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=shard,
        drop_last=loader.drop_last,
        collate_fn=loader.collate_fn,
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        **extra,
    )
