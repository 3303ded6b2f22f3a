"""In-memory tensors: ``fit((X, y))`` against two hand-written loops, in one run.

Three ways to train the same MLP with Adam on data already in memory, per configuration:

- ``loader``: a hand loop over ``DataLoader(TensorDataset(X, y), shuffle=True,
  drop_last=True)`` (what most tutorials write; each sample fetched in Python, then stacked);
- ``index``: a hand loop that batches by index, ``perm = torch.randperm(n)`` once per epoch,
  then ``X[perm[i:i + bs]]`` (what an expert writes);
- ``fit``: luzwidget's ``fit((X, y), dataloader_options={"batch_size": bs})`` (blocking,
  default callbacks, verbose off): a ``run()`` built before the clock starts, without the
  automatic snapshots a blocking ``fit()`` does not take, driven to its end as ``fit()`` does.

Each configuration is timed interleaved (the three in turn, who goes first rotating) several
times; torch runs single-threaded and the clock is the process's CPU time
(``time.process_time``), so other programs on a busy machine disturb the ratios much less
than they would wall-clock time. The ratios are medians of per-repetition ratios (pairs
measured back to back). Target: fit/index <= 1.05 on every configuration.

    python benchmarks/tensor_data.py            # full
    python benchmarks/tensor_data.py --quick    # fewer repetitions
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
    samples: int
    sizes: tuple[int, int, int]  # in, hidden, out (classes; 1: regression)
    batch_size: int


CONFIGS = [
    Config("1,792 x 64, bs 32 (digits-like)", 1_792, (64, 64, 10), 32),
    Config("20,480 x 20, bs 256 (tabular)", 20_480, (20, 64, 1), 256),
    Config("12,800 x 784, bs 128 (MNIST-like)", 12_800, (784, 128, 10), 128),
    Config("102,400 x 256, bs 512 (bigger)", 102_400, (256, 256, 10), 512),
]

Data = tuple[torch.Tensor, torch.Tensor]

BATCHES = 400
"""Training batches per measurement, at least (whole epochs)."""


def make_model(sizes: tuple[int, int, int]) -> nn.Module:
    i, h, o = sizes
    return nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, o))


def make_data(cfg: Config) -> Data:
    x = torch.randn(cfg.samples, cfg.sizes[0])
    classes = cfg.sizes[2]
    y = torch.randn(cfg.samples, 1) if classes == 1 else torch.randint(0, classes, (cfg.samples,))
    return x, y


def loss_fn(cfg: Config) -> nn.Module:
    return nn.MSELoss() if cfg.sizes[2] == 1 else nn.CrossEntropyLoss()


def _train(cfg: Config, batches: Callable[[], object], epochs: int) -> float:
    model = make_model(cfg.sizes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crit = loss_fn(cfg)
    start = time.process_time()
    for _ in range(epochs):
        model.train()
        for x, y in batches():  # type: ignore[attr-defined]
            loss = crit(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.process_time() - start


def loader(cfg: Config, data: Data, epochs: int) -> float:
    """The tutorial loop: DataLoader(TensorDataset), shuffled, last partial batch dropped."""
    dl = DataLoader(TensorDataset(*data), batch_size=cfg.batch_size, shuffle=True, drop_last=True)
    return _train(cfg, lambda: dl, epochs)


def index(cfg: Config, data: Data, epochs: int) -> float:
    """The expert's loop: one permutation per epoch, then slices."""
    x, y = data
    bs, n = cfg.batch_size, len(x)

    def batches() -> object:
        perm = torch.randperm(n)
        for i in range(n // bs):
            idx = perm[i * bs : (i + 1) * bs]
            yield x[idx], y[idx]

    return _train(cfg, batches, epochs)


def fit(cfg: Config, data: Data, epochs: int) -> float:
    """luzwidget's blocking ``fit((X, y))``; the run is built untimed."""
    spec = lw.setup(make_model(cfg.sizes), loss=loss_fn(cfg), optimizer=torch.optim.Adam)
    run = spec.set_opt_hparams(lr=1e-3).run(
        data, epochs=epochs, verbose=False, dataloader_options={"batch_size": cfg.batch_size}
    )
    run.snapshot_store.every = None  # fit() keeps no snapshots
    start = time.process_time()
    run.resume()  # what fit() calls
    return time.process_time() - start


RUNNERS: dict[str, Callable[[Config, Data, int], float]] = {
    "loader": loader,
    "index": index,
    "fit": fit,
}


def measure(cfg: Config, reps: int, epochs: int) -> tuple[dict[str, float], dict[str, float]]:
    """Per-batch µs of each runner (median over reps) and each one's ratio to ``index``."""
    data = make_data(cfg)
    n = epochs * (cfg.samples // cfg.batch_size)
    times: dict[str, list[float]] = {k: [] for k in RUNNERS}
    for fn in RUNNERS.values():  # warm-up
        fn(cfg, data, 1)
    names = list(RUNNERS)
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            times[name].append(RUNNERS[name](cfg, data, epochs) / n * 1e6)
    per_batch = {k: statistics.median(v) for k, v in times.items()}
    ratios = {
        k: statistics.median(a / b for a, b in zip(v, times["index"], strict=True))
        for k, v in times.items()
    }
    return per_batch, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    reps = 3 if args.quick else 11
    print(f"torch {torch.__version__}, threads=1, reps={reps}; per-batch CPU µs (MLP, Adam)")
    print(
        f"{'data':36} {'loader':>7} {'index':>7} {'fit':>7} {'loader/index':>12}"
        f" {'fit/index':>9} {'fit/loader':>10}"
    )
    for cfg in CONFIGS:
        epochs = -(-BATCHES // (cfg.samples // cfg.batch_size))
        us, ratio = measure(cfg, reps, epochs)
        print(
            f"{cfg.name:36} {us['loader']:7.0f} {us['index']:7.0f} {us['fit']:7.0f}"
            f" {ratio['loader']:12.2f} {ratio['fit']:9.3f}"
            f" {ratio['fit'] / ratio['loader']:10.2f}"
        )


if __name__ == "__main__":
    main()
