"""checks: the target-shape check flags broadcasting element-wise losses, and nothing else."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from luzwidget.core.checks import check_target_shape


@pytest.mark.parametrize(
    ("loss", "pred", "target"),
    [
        (nn.MSELoss(), (8, 1), (8, 1)),  # same shape
        (nn.CrossEntropyLoss(), (8, 3), (8,)),  # class indices: the loss raises (float), not us
        (nn.MSELoss(), (8, 3), (5,)),  # does not broadcast: torch's own error names it
        (lambda p, t: (p.squeeze(1) - t).pow(2).mean(), (8, 1), (8,)),  # the user's own loss
    ],
)
def test_shapes_that_are_left_alone(
    loss: Any, pred: tuple[int, ...], target: tuple[int, ...]
) -> None:
    check_target_shape(loss, torch.zeros(pred), torch.zeros(target))


@pytest.mark.parametrize("loss", [nn.MSELoss(), nn.L1Loss(), nn.HuberLoss(), nn.SmoothL1Loss()])
def test_a_broadcasting_target_names_both_shapes_and_the_fix(loss: nn.Module) -> None:
    with pytest.raises(ValueError, match=r"\(8, 1\) and the target \(8,\).*\(8, 8\).*squeeze"):
        check_target_shape(loss, torch.zeros(8, 1), torch.zeros(8))
