"""lw.datasets.playground: TF Playground's sets, generated, deterministic, checked."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import luzwidget as lw


@pytest.mark.parametrize("name", ["circle", "xor", "gauss", "spiral"])
def test_classification_sets(name: str) -> None:
    x, y = lw.datasets.playground(name, n=101, noise=0.2, seed=3)
    assert x.shape == (101, 2)
    assert x.dtype == torch.float32
    assert y.shape == (101,)
    assert y.dtype == torch.int64
    assert set(y.tolist()) == {0, 1}
    assert torch.isfinite(x).all()
    x2, y2 = lw.datasets.playground(name, n=101, noise=0.2, seed=3)
    assert torch.equal(x, x2)
    assert torch.equal(y, y2)
    x3, _ = lw.datasets.playground(name, n=101, noise=0.2, seed=4)
    assert not torch.equal(x, x3)


@pytest.mark.parametrize("name", ["sine", "regression"])
def test_regression_set(name: str) -> None:
    x, y = lw.datasets.playground(name, n=50, noise=0.0, seed=1)
    assert x.shape == (50, 1)
    assert y.shape == (50, 1)
    assert x.dtype == y.dtype == torch.float32
    assert torch.allclose(y, torch.sin(x))
    assert float(x.min()) >= -3
    assert float(x.max()) <= 3


def test_shapes_of_the_sets() -> None:
    x, y = lw.datasets.playground("circle", n=400, noise=0.0)
    radius = x.norm(dim=1)
    assert (radius[y == 0] <= 2.0 + 1e-5).all()
    assert (radius[y == 1] >= 3.5 - 1e-5).all()
    x, y = lw.datasets.playground("xor", n=400, noise=0.0)
    assert torch.equal(y, (x[:, 0] * x[:, 1] > 0).long())
    x, y = lw.datasets.playground("gauss", n=400, noise=0.0)
    assert float(x[y == 0].mean(0)[0]) > 1
    assert float(x[y == 1].mean(0)[0]) < -1
    x, y = lw.datasets.playground("spiral", n=400, noise=0.0)
    assert float(x.norm(dim=1).max()) <= 5.0 + 1e-5


def test_global_random_state_untouched() -> None:
    torch.manual_seed(0)
    before = torch.get_rng_state()
    lw.datasets.playground("spiral", seed=7)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "moons"}, "name must be one of 'circle', 'xor', 'gauss', 'spiral', 'sine'"),
        ({"name": 3}, "got 3"),
        ({"name": "xor", "n": 1}, "n must be an int >= 2 (the number of points), got 1"),
        ({"name": "xor", "n": 10.0}, "got 10.0"),
        ({"name": "xor", "n": True}, "got True"),
        ({"name": "xor", "noise": -0.1}, "noise must be a finite number >= 0 (e.g. 0.1), got -0.1"),
        ({"name": "xor", "noise": float("nan")}, "got nan"),
        ({"name": "xor", "noise": "a lot"}, "got 'a lot'"),
        ({"name": "xor", "seed": 1.5}, "seed must be an int, got 1.5"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(lw.ConfigError) as info:
        lw.datasets.playground(**kwargs)
    assert message in str(info.value)
