"""metrics/values.py helpers shared by callbacks, loggers and widgets: as_scalar, loss_text."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from luzwidget.core.values import as_scalar, loss_text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (torch.tensor(2.5), 2.5),
        (torch.tensor([3]), 3),
        (torch.tensor([[0.5]], dtype=torch.float64), 0.5),
        (np.float32(0.25), 0.25),
        (np.array([4.0]), 4.0),
        (1.5, 1.5),
        (None, None),
        ("text", "text"),
        ({"a": 1}, {"a": 1}),
        ([1.0], [1.0]),
    ],
)
def test_as_scalar_unwraps_one_element(value: Any, expected: Any) -> None:
    out = as_scalar(value)
    assert out == expected
    assert type(out) is type(expected) or isinstance(out, int | float)
    assert not isinstance(out, torch.Tensor | np.ndarray | np.generic)


def test_as_scalar_leaves_several_elements_alone() -> None:
    t = torch.tensor([1.0, 2.0])
    a = np.array([1.0, 2.0])
    assert as_scalar(t) is t
    assert as_scalar(a) is a
    assert as_scalar(torch.empty(0)).numel() == 0


def test_loss_text_for_progress_and_breakpoints() -> None:
    assert loss_text(None) == ""
    assert loss_text(torch.tensor(0.31)) == "loss=0.3100"
    assert loss_text(0.5) == "loss=0.5000"
    assert loss_text({"a": torch.tensor(1.0), "b": 2.0}) == "loss_a=1.0000, loss_b=2.0000"
    assert loss_text(torch.tensor(float("nan")), "", "g") == "nan"
    assert loss_text({"a": torch.tensor(float("inf")), "b": 1.0}, "", "g") == "a=inf, b=1"
    assert loss_text(torch.ones(3)) == "loss=..."
    assert loss_text(torch.ones(3), "", "g") == "..."


def test_the_docstring_examples_run() -> None:
    import doctest

    import luzwidget.core.values as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
