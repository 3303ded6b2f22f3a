"""A small CNN with BatchNorm whose first block is frozen (``requires_grad_(False)``, as in
fine-tuning), built by a factory function (``setup(make_cnn, ...)``).

Glue left to the user: none.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as nnf

import luzwidget as lw
from tests.workloads.battery import (
    Workload,
    check_dashboard,
    check_fit,
    check_rewind,
    check_save_load,
    check_step_and_layers,
    close,
    same,
    weights,
)


def make_cnn(classes: int = 3) -> nn.Module:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, classes),
    )
    model[0].requires_grad_(False)  # frozen, as a pretrained stem would be
    return model


def images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 6, 6, generator=g)
    return x, (x.mean((1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 1).long()


def workload() -> Workload:
    spec = lw.setup(
        make_cnn,
        loss=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD,
        metrics=lw.metrics.Accuracy(),
    )
    opts = {"valid_data": images(16, 1), "dataloader_options": {"batch_size": 8}}
    return Workload(spec.set_opt_hparams(lr=0.1, momentum=0.9), images(48), opts)


def test_frozen_weights_stay_and_batchnorm_statistics_move_in_training_only(tmp_path: Path) -> None:
    w = workload()
    torch.manual_seed(w.seed)
    initial = weights(make_cnn())
    fitted = check_fit(w)
    model = fitted.model
    assert torch.equal(model[0].weight, initial["0.weight"])  # frozen
    assert not torch.equal(model[3].weight, initial["3.weight"])  # trained
    assert int(model[1].num_batches_tracked) == w.epochs * 6  # training batches only
    x, y = images(19, seed=2)
    logits = fitted.predict(x)
    evaluation = fitted.evaluate((x, y), dataloader_options={"batch_size": 8})
    assert close(evaluation["loss"], nnf.cross_entropy(logits, y).item())
    assert close(evaluation["acc"], (logits.argmax(1) == y).float().mean().item())
    assert int(fitted.model[1].num_batches_tracked) == w.epochs * 6  # eval: untouched
    check_save_load(fitted, tmp_path, x)


def test_step_layers_rewind_and_dashboard() -> None:
    w = workload()
    run = check_step_and_layers(w)
    frame = run.layers().set_index("name")
    assert frame.loc["0.weight", "grad_norm"] != frame.loc["0.weight", "grad_norm"]  # NaN: frozen
    assert frame.loc["3.weight", "grad_norm"] > 0
    reference = w.trained()
    check_rewind(w, reference)  # BatchNorm's running statistics restored too
    check_dashboard(w)


def test_a_factory_model_saves_and_loads_without_the_setup(tmp_path: Path) -> None:
    fitted = check_fit(workload())
    path = lw.save(fitted, tmp_path / "cnn.pt")
    again = lw.load(path)  # the factory is found by its import path, as a class is
    assert same(weights(again.model), weights(fitted.model))
