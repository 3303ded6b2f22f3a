"""A loader's own random generators: what it draws its order from when the user gave it one.

A ``DataLoader(..., generator=g)`` (or a sampler with its own generator) draws each epoch's
order from ``g``, not from torch's global generator; checkpoints, snapshots and resume points
keep ``g``'s state next to the global ones, so a rewind or a resume replays the same order.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["generator_states", "loader_generators", "set_generator_states"]


def loader_generators(loader: Any) -> list[torch.Generator]:
    """The loader's own generators (its ``generator``, its samplers'), each once."""
    loader = getattr(loader, "loader", loader)  # moved to a device by the accelerator
    found: list[torch.Generator] = []
    batch_sampler = getattr(loader, "batch_sampler", None)
    for owner in (
        loader,
        getattr(loader, "sampler", None),
        getattr(batch_sampler, "sampler", None),
    ):
        gen = getattr(owner, "generator", None)
        if isinstance(gen, torch.Generator) and all(gen is not g for g in found):
            found.append(gen)
    return found


def generator_states(loader: Any) -> list[torch.Tensor]:
    """The states of :func:`loader_generators`, in their order."""
    return [g.get_state() for g in loader_generators(loader)]


def set_generator_states(loader: Any, states: list[torch.Tensor]) -> None:
    """Put back what :func:`generator_states` returned (extra or missing ones are left)."""
    for gen, state in zip(loader_generators(loader), states, strict=False):
        gen.set_state(state)
