"""Two inputs and two outputs: ``forward(self, a, b)`` returns a dict; the data is
``((a, b), {"value": y1, "kind": y2})``, Keras style.

Glue left to the user: none (the loss sums the two terms, which is the model's choice).
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
)


class TwoInTwoOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 8)
        self.b = nn.Linear(5, 8)
        self.value = nn.Linear(16, 1)
        self.kind = nn.Linear(16, 4)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.cat([torch.relu(self.a(a)), torch.relu(self.b(b))], dim=1)
        return {"value": self.value(h).squeeze(1), "kind": self.kind(h)}


def two_losses(pred: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
    return nnf.mse_loss(pred["value"], target["value"]) + nnf.cross_entropy(
        pred["kind"], target["kind"]
    )


def data(n: int, seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, 3, generator=g), torch.randn(n, 5, generator=g)
    targets = {"value": a.sum(1) - b.sum(1), "kind": torch.randint(0, 4, (n,), generator=g)}
    return (a, b), targets


def workload() -> Workload:
    spec = lw.setup(TwoInTwoOut, loss=two_losses, optimizer=torch.optim.Adam)
    opts = {"valid_data": data(20, 1), "dataloader_options": {"batch_size": 8}}
    return Workload(spec.set_opt_hparams(lr=1e-2), data(60), opts)


def test_the_loss_average_weights_batches_by_samples_not_by_keys(tmp_path: Path) -> None:
    fitted = check_fit(workload())
    (a, b), target = data(21, seed=3)  # batches of 8, 8, 5: the last one weighs 5/21
    pred = fitted.predict(((a, b),))  # the input, as the first element of the data
    assert pred["value"].shape == (21,)
    assert pred["kind"].shape == (21, 4)
    evaluation = fitted.evaluate(((a, b), target), dataloader_options={"batch_size": 8})
    per_sample = two_losses(pred, target).item()  # the mean over all 21 samples
    assert close(evaluation["loss"], per_sample)
    batches = [
        two_losses(
            {k: v[i : i + 8] for k, v in pred.items()}, {k: v[i : i + 8] for k, v in target.items()}
        ).item()
        for i in (0, 8, 16)
    ]
    assert not close(evaluation["loss"], sum(batches) / 3)  # what weighting by len(dict) gave
    check_save_load(fitted, tmp_path, ((a, b),))


def test_step_layers_rewind_and_dashboard() -> None:
    w = workload()
    run = check_step_and_layers(w)
    a, b = run.ctx.input
    assert a.shape == (8, 3)
    assert b.shape == (8, 5)
    assert set(run.ctx.target) == {"value", "kind"}
    check_rewind(w, w.trained())
    check_dashboard(w)


def test_a_forward_that_does_not_fit_the_input_names_both_and_the_fix() -> None:
    class OneInput(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = TwoInTwoOut()

        def forward(self, x: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
            return self.net(*x)

    spec = lw.setup(OneInput, loss=two_losses, optimizer=torch.optim.Adam)
    run = spec.run(data(16), epochs=1, verbose=False)
    run.resume()
    assert run.state == "error"
    text = str(run.error.__cause__)
    assert (
        "OneInput.forward(x) cannot be called with the batch's input, a tuple of 2 (Tensor, Tensor)"
        in text
    )
    assert "a tuple or list input is passed as positional arguments, model(*input)" in text
    assert "forward(self, x1, x2)" in text
    assert "((input,), target)" in text
