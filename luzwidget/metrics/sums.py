"""Sums of per-batch tensors kept on their device, so that accumulating never waits for it."""

from __future__ import annotations

import torch

__all__ = ["FOLD_EVERY", "DeviceSum", "widen"]

FOLD_EVERY = 1024
"""Per-batch partial sums kept before they are folded into one (bounds memory, not syncs)."""


def widen(value: torch.Tensor) -> torch.Tensor:
    """``value`` as float64 to sum an epoch with (float32 on MPS, which has no float64)."""
    return value.float() if value.device.type == "mps" else value.double()


class DeviceSum:
    """Sum of per-batch tensors, kept on their device: ``add`` never waits for the device.

    Appending is cheaper than an in-place add (about 0.05 µs against 0.7 µs on CPU); every
    ``FOLD_EVERY`` parts are stacked and summed into a partial sum, still on the device
    (kept apart: ``torch.stack`` of mixed dtypes is several times slower).

    Parameters
    ----------
    wide
        Sum floating-point parts in float64 (float32 on MPS), as an epoch of float32 batch
        sums loses precision otherwise.

    Examples
    --------
    >>> s = DeviceSum()
    >>> s.add(torch.tensor(2)); s.add(torch.tensor(3))
    >>> s.total()
    tensor(5)
    """

    __slots__ = ("partial", "parts", "wide")

    def __init__(self, wide: bool = False) -> None:
        self.wide = wide
        self.parts: list[torch.Tensor] = []
        self.partial: torch.Tensor | None = None  # the sum of the parts folded so far

    def add(self, value: torch.Tensor) -> None:
        """Add one batch's tensor (all parts have one shape)."""
        parts = self.parts
        parts.append(value)
        if len(parts) >= FOLD_EVERY:
            self.partial = self.total()
            self.parts = []

    def _sum_parts(self) -> torch.Tensor:
        stacked = torch.stack(self.parts)
        if self.wide and stacked.is_floating_point():
            stacked = widen(stacked)
        return stacked.sum(0)

    def total(self) -> torch.Tensor | None:
        """The sum so far, as a tensor on the parts' device; None before the first ``add``."""
        total = self.partial
        if self.parts:
            chunk = self._sum_parts()
            total = chunk if total is None else total + chunk
        return total

    def to(self, device: torch.device | str) -> DeviceSum:
        """Move the sum to ``device``; returns ``self``."""
        self.parts = [p.to(device) for p in self.parts]
        if self.partial is not None:
            self.partial = self.partial.to(device)
        return self
