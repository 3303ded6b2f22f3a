"""Small generated data sets for teaching, as TensorFlow Playground draws them.

>>> import luzwidget as lw
>>> X, y = lw.datasets.playground("spiral", n=200, seed=0)
>>> tuple(X.shape), X.dtype, tuple(y.shape), y.dtype
((200, 2), torch.float32, (200,), torch.int64)

Every set is generated (nothing is downloaded) from its own ``torch.Generator`` seeded with
``seed``: the same arguments give the same tensors, and torch's global random state is
left as it was.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from luzwidget.core.exceptions import ConfigError

__all__ = ["NAMES", "playground"]

Maker = Callable[[int, float, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def _normal(n: int, gen: torch.Generator, dims: int = 2) -> torch.Tensor:
    return torch.randn(n, dims, generator=gen)


def _uniform(n: int, gen: torch.Generator, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def _circle(n: int, noise: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0 inside a disc of radius 2, class 1 in a ring from 3.5 to 5."""
    inner = n // 2
    radius = torch.cat([_uniform(inner, gen, 0.0, 2.0), _uniform(n - inner, gen, 3.5, 5.0)])
    angle = _uniform(n, gen, 0.0, 2 * math.pi)
    x = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    y = torch.cat([torch.zeros(inner), torch.ones(n - inner)]).long()
    return x + noise * _normal(n, gen), y


def _xor(n: int, noise: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Points in [-5, 5]²: class 1 where x·y > 0 (two opposite quadrants)."""
    x = torch.stack([_uniform(n, gen, -5.0, 5.0), _uniform(n, gen, -5.0, 5.0)], dim=1)
    x = x + torch.sign(x) * 0.3  # a small gap along the axes, as in TF Playground
    y = (x[:, 0] * x[:, 1] > 0).long()
    return x + noise * _normal(n, gen), y


def _gauss(n: int, noise: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two Gaussian blobs centred at (2, 2) and (-2, -2)."""
    half = n // 2
    centres = torch.tensor([[2.0, 2.0], [-2.0, -2.0]])
    y = torch.cat([torch.zeros(half), torch.ones(n - half)]).long()
    x = centres[y] + (1.0 + noise) * _normal(n, gen)
    return x, y


def _spiral(n: int, noise: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved spirals of radius up to 5, one per class."""
    half = n // 2
    y = torch.cat([torch.zeros(half), torch.ones(n - half)]).long()
    t = torch.cat([torch.arange(half) / max(half, 1), torch.arange(n - half) / max(n - half, 1)])
    radius = 5.0 * t
    angle = 1.75 * t * 2 * math.pi + math.pi * y
    x = torch.stack([radius * torch.sin(angle), radius * torch.cos(angle)], dim=1)
    return x + noise * _normal(n, gen), y


def _sine(n: int, noise: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1-D regression: x in [-3, 3], y = sin(x) + noise."""
    x = _uniform(n, gen, -3.0, 3.0)
    y = torch.sin(x) + noise * torch.randn(n, generator=gen)
    return x.unsqueeze(1), y.unsqueeze(1)


_MAKERS: dict[str, Maker] = {
    "circle": _circle,
    "xor": _xor,
    "gauss": _gauss,
    "spiral": _spiral,
    "sine": _sine,
}
NAMES = tuple(_MAKERS)
"""The sets :func:`playground` makes: four 2-D classifications and ``"sine"`` (1-D regression)."""

_DEFAULT_NOISE = {"circle": 0.1, "xor": 0.1, "gauss": 0.1, "spiral": 0.1, "sine": 0.1}


def playground(
    name: str, n: int = 500, noise: float | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """One of TensorFlow Playground's data sets, generated.

    Parameters
    ----------
    name : str
        ``"circle"`` (a disc inside a ring), ``"xor"`` (opposite quadrants), ``"gauss"``
        (two blobs), ``"spiral"`` (two spirals): 2-D inputs, two classes; ``"sine"`` (alias
        ``"regression"``): a 1-D regression, ``y = sin(x) + noise``.
    n : int, default 500
        Number of points (>= 2).
    noise : float, optional
        Standard deviation of the Gaussian noise added (>= 0, in the units of the inputs,
        which span about [-5, 5]; for ``"sine"``, of the targets). Default 0.1.
    seed : int, default 0
        Seeds the set's own generator: the same arguments give the same tensors.

    Returns
    -------
    (X, y) : tuple of torch.Tensor
        Classification: ``X`` float32 ``(n, 2)``, ``y`` int64 class labels ``(n,)`` (0 or 1).
        Regression: ``X`` float32 ``(n, 1)``, ``y`` float32 ``(n, 1)``.

    Raises
    ------
    ConfigError
        If ``name`` is unknown, ``n`` is not an int >= 2, ``noise`` is not a finite number
        >= 0, or ``seed`` is not an int.
    """
    key = "sine" if name == "regression" else name
    if not isinstance(name, str) or key not in _MAKERS:
        raise ConfigError(
            f"playground: name must be one of {', '.join(map(repr, NAMES))} (or 'regression'),"
            f" got {name!r}."
        )
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ConfigError(f"playground: n must be an int >= 2 (the number of points), got {n!r}.")
    if noise is None:
        noise = _DEFAULT_NOISE[key]
    ok = isinstance(noise, int | float) and not isinstance(noise, bool)
    if not ok or not math.isfinite(noise) or noise < 0:
        raise ConfigError(
            f"playground: noise must be a finite number >= 0 (e.g. 0.1), got {noise!r}."
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"playground: seed must be an int, got {seed!r}.")
    gen = torch.Generator()
    gen.manual_seed(seed)
    x, y = _MAKERS[key](n, float(noise), gen)
    return x.float().contiguous(), y.contiguous()
