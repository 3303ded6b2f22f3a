"""A GAN, luz's pattern: two optimizers from ``set_optimizers()`` and a ``step(ctx)`` that
sets only the losses (no ``ctx.pred``).

Glue left to the user: none beyond the step itself (which is the model's training logic);
``ctx.backward``/``ctx.step_opt`` where built-ins (GradientClip, MixedPrecision,
accumulation) must act inside it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as nnf
from torch.utils.data import DataLoader, TensorDataset

import luzwidget as lw
from luzwidget.callbacks import GradientClip
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

LATENT = 4


class GAN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gen = nn.Sequential(nn.Linear(LATENT, 16), nn.ReLU(), nn.Linear(16, 2))
        self.disc = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.gen(z)

    def set_optimizers(self, lr: float = 1e-3) -> dict[str, torch.optim.Optimizer]:
        return {
            "disc": torch.optim.Adam(self.disc.parameters(), lr=lr),
            "gen": torch.optim.Adam(self.gen.parameters(), lr=lr),
        }

    def losses(self, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = real.shape[0]
        fake = self.gen(torch.randn(n, LATENT))
        real_p, fake_p = self.disc(real), self.disc(fake.detach())
        d_loss = nnf.binary_cross_entropy_with_logits(real_p, torch.ones(n, 1)) + (
            nnf.binary_cross_entropy_with_logits(fake_p, torch.zeros(n, 1))
        )
        return d_loss, fake, torch.ones(n, 1)

    def step(self, ctx: lw.Context) -> None:
        d_loss, fake, ones = self.losses(ctx.input)
        if ctx.training:
            disc = ctx.optimizers["disc"]
            disc.zero_grad()
            ctx.backward(d_loss)
            ctx.step_opt(disc)
        g_loss = nnf.binary_cross_entropy_with_logits(self.disc(fake), ones)
        if ctx.training:
            gen = ctx.optimizers["gen"]
            gen.zero_grad()
            ctx.backward(g_loss)
            ctx.step_opt(gen)
        ctx.loss = {"disc": d_loss.detach(), "gen": g_loss.detach()}


class LuzGAN(GAN):
    """The same step as luz writes it: loss.backward() and opt.step() directly."""

    def step(self, ctx: lw.Context) -> None:
        d_loss, fake, ones = self.losses(ctx.input)
        disc, gen = ctx.optimizers["disc"], ctx.optimizers["gen"]
        if ctx.training:
            disc.zero_grad()
            d_loss.backward()
            disc.step()
        g_loss = nnf.binary_cross_entropy_with_logits(self.disc(fake), ones)
        if ctx.training:
            gen.zero_grad()
            g_loss.backward()
            gen.step()
        ctx.loss = {"disc": d_loss.detach(), "gen": g_loss.detach()}


def real_data(n: int = 50) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 2, generator=g) * 0.5 + torch.tensor([2.0, -1.0])


def workload(module: type[nn.Module] = GAN, **fit: object) -> Workload:
    spec = lw.setup(module).set_opt_hparams(lr=1e-3)
    opts = {"valid_data": real_data(20), "dataloader_options": {"batch_size": 10}, **fit}
    return Workload(spec, real_data(), opts)


def test_fit_logs_each_optimizers_loss() -> None:
    fitted = check_fit(workload())
    assert set(fitted.records["metrics"]["train"][0]) == {"loss", "loss_disc", "loss_gen"}


def test_evaluate_with_set_optimizers_by_hand(tmp_path: Path) -> None:
    fitted = check_fit(workload())
    x = real_data(23)  # batches of 10, 10, 3
    torch.manual_seed(5)
    evaluation = fitted.evaluate(x, dataloader_options={"batch_size": 10})
    torch.manual_seed(5)  # the same noise: a DataLoader draws its seed, then the batches
    model, sums, n = fitted.model.eval(), {"disc": 0.0, "gen": 0.0}, 0
    with torch.no_grad():
        for (batch,) in DataLoader(TensorDataset(x), batch_size=10):
            d_loss, fake, ones = model.losses(batch)
            g_loss = nnf.binary_cross_entropy_with_logits(model.disc(fake), ones)
            sums["disc"] += d_loss.item() * len(batch)
            sums["gen"] += g_loss.item() * len(batch)
            n += len(batch)
    assert close(evaluation["loss_disc"], sums["disc"] / n)
    assert close(evaluation["loss_gen"], sums["gen"] / n)
    assert close(evaluation["loss"], (sums["disc"] + sums["gen"]) / n)
    z = torch.randn(6, LATENT)
    assert fitted.predict(z).shape == (6, 2)  # forward: the generator
    check_save_load(fitted, tmp_path, z)


def test_step_layers_rewind_and_dashboard() -> None:
    w = workload()
    run = check_step_and_layers(w)
    assert run.ctx.pred is None  # the step set only the losses
    assert set(run.ctx.loss) == {"disc", "gen"}
    check_rewind(w, w.trained())
    check_dashboard(w, fields=("input", "loss"))


def test_gradient_clip_acts_inside_the_step() -> None:
    clip = GradientClip(max_norm=0)  # zeroes the gradients: Adam then moves nothing
    run = workload(callbacks=[clip]).run()
    run.breakpoints.sentinel.disable("zero_grads")  # which the sentinel would say: planted
    before = weights(run.ctx.model)
    run.resume()
    assert run.state == "done", run.error
    assert clip.last_norm is not None
    assert clip.last_norm > 0
    assert same(weights(run.ctx.model), before)


def test_a_step_that_goes_around_the_pieces_is_refused_before_the_optimizer_moves() -> None:
    w = workload(LuzGAN)
    assert w.trained().state == "done"  # without built-ins, luz's step runs as written
    run = workload(LuzGAN, callbacks=[GradientClip(1.0)]).run()
    before = weights(run.ctx.model)
    run.resume()
    assert run.state == "error"
    text = str(run.error.__cause__)
    assert "called Adam.step() directly, so GradientClip cannot act" in text
    assert "call ctx.backward(loss) and ctx.step_opt(opt)" in text
    assert same(weights(run.ctx.model), before)


def test_accumulation_inside_the_step() -> None:
    w = workload(accumulate=5)  # 50 samples, batches of 10: one step per epoch
    run = w.run()
    before = weights(run.ctx.model)
    run.step("batch", n=4)
    assert same(weights(run.ctx.model), before)  # no step yet
    run.step("batch")
    moved = weights(run.ctx.model)
    assert not same(moved, before)
    assert all(s["step"] == 1 for s in run.ctx.optimizers["gen"].state.values())


def test_a_metric_without_a_prediction_says_why() -> None:
    spec = lw.setup(GAN, metrics=[lw.metrics.MAE()]).set_opt_hparams(lr=1e-3)
    with pytest.raises(
        lw.CallbackError, match=r"ctx\.pred is None: the module's step\(\) set only"
    ):
        spec.fit(real_data(), epochs=1, verbose=False)
