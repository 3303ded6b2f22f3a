"""Per-batch overhead of luzwidget against a hand-written PyTorch loop, in one run.

Each configuration is timed interleaved (hand, fit, hand, fit, ...) several times, and the
median per-batch time of each is compared. Single-threaded torch so the numbers are stable.

    python benchmarks/overhead.py            # full
    python benchmarks/overhead.py --quick    # fewer repetitions (CI smoke)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import luzwidget as lw


@dataclass
class Config:
    name: str
    sizes: tuple[int, int, int]
    batch_size: int
    n_batches: int
    loss: str
    loader: bool


CONFIGS = [
    Config("mlp 20-64-1, mse, bs256, pre-batched", (20, 64, 1), 256, 200, "mse", False),
    Config("mlp 20-64-1, mse, bs32, DataLoader", (20, 64, 1), 32, 200, "mse", True),
    Config("mlp 256-1024-10, ce, bs256, pre-batched", (256, 1024, 10), 256, 60, "ce", False),
]


def make_model(sizes: tuple[int, int, int]) -> nn.Module:
    i, h, o = sizes
    return nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, o))


def make_data(cfg: Config):
    n = cfg.batch_size * cfg.n_batches
    x = torch.randn(n, cfg.sizes[0])
    if cfg.loss == "mse":
        y = torch.randn(n, cfg.sizes[2])
    else:
        y = torch.randint(0, cfg.sizes[2], (n,))
    if cfg.loader:
        return DataLoader(TensorDataset(x, y), batch_size=cfg.batch_size, shuffle=True,
                          drop_last=True)
    return list(zip(x.split(cfg.batch_size), y.split(cfg.batch_size), strict=True))


def loss_fn(cfg: Config) -> nn.Module:
    return nn.MSELoss() if cfg.loss == "mse" else nn.CrossEntropyLoss()


def hand(cfg: Config, data, epochs: int) -> float:
    model = make_model(cfg.sizes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crit = loss_fn(cfg)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for x, y in data:
            pred = model(x)
            loss = crit(pred, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def fit(cfg: Config, data, epochs: int) -> float:
    spec = lw.setup(make_model(cfg.sizes), loss=loss_fn(cfg), optimizer=torch.optim.Adam)
    spec = spec.set_opt_hparams(lr=1e-3)
    start = time.perf_counter()
    spec.fit(data, epochs=epochs, verbose=False)
    return time.perf_counter() - start


def background(cfg: Config, data, epochs: int) -> float:
    spec = lw.setup(make_model(cfg.sizes), loss=loss_fn(cfg), optimizer=torch.optim.Adam)
    run = spec.set_opt_hparams(lr=1e-3).run(data, epochs=epochs, verbose=False)
    start = time.perf_counter()
    run.start()
    run.wait()
    return time.perf_counter() - start


def measure(cfg: Config, runners: dict[str, Callable[..., float]], reps: int, epochs: int):
    data = make_data(cfg)
    n = epochs * (len(data) if not cfg.loader else len(data))
    times: dict[str, list[float]] = {k: [] for k in runners}
    for name, fn in runners.items():  # warm-up
        fn(cfg, data, 1)
    for _ in range(reps):
        for name, fn in runners.items():
            times[name].append(fn(cfg, data, epochs) / n * 1e6)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    reps, epochs = (3, 1) if args.quick else (7, 3)
    runners = {"hand": hand, "fit": fit, "start": background}
    print(f"torch {torch.__version__}, threads=1, reps={reps}, epochs={epochs}")
    print(f"{'config':42} {'hand us':>8} {'fit us':>8} {'ratio':>6} {'start us':>9} {'vs fit':>7}")
    for cfg in CONFIGS:
        r = measure(cfg, runners, reps, epochs)
        print(f"{cfg.name:42} {r['hand']:8.1f} {r['fit']:8.1f} {r['fit'] / r['hand']:6.3f}"
              f" {r['start']:9.1f} {r['start'] / r['fit']:7.3f}")


if __name__ == "__main__":
    main()
