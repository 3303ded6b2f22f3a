"""A VAE: ``forward`` returns ``(reconstruction, mu, logvar)``; the loss is a function of
that tuple and the target, the input itself (``fit((x, x))``).

Glue left to the user: none (the loss function is the model's math).
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


class VAE(nn.Module):
    def __init__(self, d: int = 6, latent: int = 2) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, 16), nn.ReLU(), nn.Linear(16, d))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.decoder(z), mu, logvar


def vae_loss(pred: tuple[torch.Tensor, ...], target: torch.Tensor) -> torch.Tensor:
    recon, mu, logvar = pred
    rec = nnf.mse_loss(recon, target, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (rec + kl) / target.shape[0]


def data(n: int = 60, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g)


def workload() -> Workload:
    x = data()
    spec = lw.setup(VAE, loss=vae_loss, optimizer=torch.optim.Adam).set_opt_hparams(lr=1e-2)
    opts = {"valid_data": (data(20, 1), data(20, 1)), "dataloader_options": {"batch_size": 16}}
    return Workload(spec, (x, x), opts)


def test_fit_predict_evaluate_by_hand_and_save_load(tmp_path: Path) -> None:
    fitted = check_fit(workload())
    x = data(21, seed=2)  # batches of 8, 8, 5
    recon, mu, logvar = fitted.predict(x)  # a tuple of stacked tensors
    assert recon.shape == (21, 6)
    assert mu.shape == (21, 2)
    evaluation = fitted.evaluate((x, x), dataloader_options={"batch_size": 8})
    assert close(evaluation["loss"], vae_loss((recon, mu, logvar), x).item())  # per sample
    check_save_load(fitted, tmp_path, x)


def test_step_layers_rewind_and_dashboard() -> None:
    w = workload()
    run = check_step_and_layers(w)
    assert isinstance(run.ctx.pred, tuple)
    assert len(run.ctx.pred) == 3
    check_rewind(w, w.trained())  # the reparametrisation draws: replayed exactly
    check_dashboard(w)
