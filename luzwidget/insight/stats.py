"""Tensor statistics the layer views compute: norms, first outputs, NaN/inf counts."""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = [
    "ROOT",
    "first_tensor",
    "grad_norm",
    "nonfinite_count",
    "norm",
    "numbers",
    "ratio",
    "stats",
]

ROOT = "(model)"
"""How the model itself is named among its modules (``named_modules()`` calls it ``""``)."""


def first_tensor(output: Any) -> torch.Tensor | None:
    """The output itself if a tensor, else the first tensor in a tuple, list or dict."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, tuple | list):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    return None


def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean and std of the finite values (NaN if none), and the count of the others."""
    with torch.no_grad():
        x = x.detach()
        x = x.abs() if x.is_complex() else x.float()
        finite = torch.isfinite(x)
        n = finite.sum()
        kept = torch.where(finite, x, 0.0)
        mean = kept.sum() / n
        var = (torch.where(finite, x - mean, 0.0) ** 2).sum() / (n - 1)
        return mean, var.sqrt(), x.numel() - n


def norm(x: torch.Tensor) -> torch.Tensor:
    """‖x‖ as a float32 0-d tensor that does not overflow for huge finite values.

    Squaring values above ~1.8e19 overflows float32, so ‖x‖ is computed as
    ``max|x| * ‖x / max|x|‖`` (inf or NaN only when ``x`` holds one; no host sync).
    """
    with torch.no_grad():
        x = x.detach()
        x = x.abs() if x.is_complex() else x.float()
        scale = x.abs().amax() if x.numel() else torch.zeros((), device=x.device)
        safe = torch.where(torch.isfinite(scale) & (scale > 0), scale, torch.ones_like(scale))
        out: torch.Tensor = torch.linalg.vector_norm(x / safe) * safe
        return out


def grad_norm(p: torch.Tensor) -> torch.Tensor | None:
    return None if p.grad is None else norm(p.grad)


def nonfinite_count(p: torch.Tensor) -> torch.Tensor:
    count = (~torch.isfinite(p.detach())).sum()
    if p.grad is not None:
        count = count + (~torch.isfinite(p.grad)).sum().to(count.device)
    return count


def numbers(values: list[torch.Tensor | None]) -> list[float]:
    """Python floats (NaN for None), with one host transfer per device."""
    out = [math.nan] * len(values)
    by_device: dict[torch.device, list[tuple[int, torch.Tensor]]] = {}
    for i, v in enumerate(values):
        if v is not None:
            by_device.setdefault(v.device, []).append((i, v))
    for pairs in by_device.values():
        stacked = torch.stack([v.reshape(()).double() for _, v in pairs])
        for (i, _), value in zip(pairs, stacked.tolist(), strict=True):
            out[i] = value
    return out


def ratio(update: float, norm: float) -> float:
    if math.isnan(update) or norm == 0 or not math.isfinite(norm):
        return math.nan
    return update / norm
