"""Per-batch overhead of luzwidget against a hand-written PyTorch loop, in one run.

Each configuration is timed interleaved (hand, fit, hand, fit, ...) several times, and the
median per-batch time of each is compared. torch runs single-threaded and the clock is the
process's CPU time (``time.process_time``), so other programs on a busy machine disturb the
ratio much less than they would wall-clock time.

    python benchmarks/overhead.py            # full
    python benchmarks/overhead.py --quick    # fewer repetitions

Columns: per-batch µs of the hand loop, of blocking ``fit()`` (default callbacks, verbose
off), of ``run.start()`` (the notebook driver, a background thread) and of ``run.start()``
with the dashboard attached and publishing; and the ratios fit/hand, start/fit, dash/start.
Targets: fit/hand <= 1.05 (1.10 through a DataLoader), start/fit <= 1.03, dash/start <= 1.03.
"""

from __future__ import annotations

import argparse
import asyncio
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
    Config("mlp 20-64-1, mse, bs256, pre-batched", (20, 64, 1), 256, 500, "mse", False),
    Config("mlp 20-64-1, mse, bs32, DataLoader", (20, 64, 1), 32, 500, "mse", True),
    Config("mlp 256-1024-10, ce, bs256, pre-batched", (256, 1024, 10), 256, 60, "ce", False),
]


def make_model(sizes: tuple[int, int, int]) -> nn.Module:
    i, h, o = sizes
    return nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, o))


def make_data(cfg: Config):
    n = cfg.batch_size * cfg.n_batches
    x = torch.randn(n, cfg.sizes[0])
    classes = cfg.sizes[2]
    y = torch.randn(n, classes) if cfg.loss == "mse" else torch.randint(0, classes, (n,))
    if cfg.loader:
        return DataLoader(
            TensorDataset(x, y), batch_size=cfg.batch_size, shuffle=True, drop_last=True
        )
    return list(zip(x.split(cfg.batch_size), y.split(cfg.batch_size), strict=True))


def loss_fn(cfg: Config) -> nn.Module:
    return nn.MSELoss() if cfg.loss == "mse" else nn.CrossEntropyLoss()


def hand(cfg: Config, data, epochs: int) -> float:
    model = make_model(cfg.sizes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crit = loss_fn(cfg)
    start = time.process_time()
    for _ in range(epochs):
        model.train()
        for x, y in data:
            pred = model(x)
            loss = crit(pred, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.process_time() - start


def make_run(cfg: Config, data, epochs: int) -> lw.Run:
    """What ``fit()`` does before its first batch (model, optimizer, context), untimed."""
    spec = lw.setup(make_model(cfg.sizes), loss=loss_fn(cfg), optimizer=torch.optim.Adam)
    return spec.set_opt_hparams(lr=1e-3).run(data, epochs=epochs, verbose=False)


def fit(cfg: Config, data, epochs: int) -> float:
    """Blocking ``fit()``: the default callbacks, verbose off."""
    run = make_run(cfg, data, epochs)
    start = time.process_time()
    run.resume()  # what fit() calls
    return time.process_time() - start


def background(cfg: Config, data, epochs: int) -> float:
    """The notebook driver: ``run.start()`` trains in a thread; this thread waits."""
    run = make_run(cfg, data, epochs)
    start = time.process_time()
    run.start()
    run.wait()
    return time.process_time() - start


def dashboard(cfg: Config, data, epochs: int) -> float:
    """``run.start()`` with a dashboard attached and publishing, as in a notebook: the
    publisher ticks on this thread's asyncio loop while the run trains in its thread.
    Its CPU time is counted too (messages are built, then dropped instead of sent)."""
    from luzwidget.widgets import Dashboard

    async def main() -> float:
        run = make_run(cfg, data, epochs)
        dash = Dashboard(run)
        dash.send = lambda msg, buffers=None: None  # no frontend: build, don't send
        dash._handle_custom_msg({"cmd": "hello"}, [])  # a view is there: publish
        start = time.process_time()
        run.start()
        await asyncio.get_running_loop().run_in_executor(None, run.wait)
        elapsed = time.process_time() - start
        dash.close()
        return elapsed

    return asyncio.run(main())


def measure(cfg: Config, runners: dict[str, Callable[..., float]], reps: int, epochs: int):
    """Per-batch µs of each runner (median over reps) and each runner's ratio to "hand",
    the median of the ratios within a repetition (pairs measured back to back, so slow
    drifts of a shared machine cancel out)."""
    data = make_data(cfg)
    n = epochs * len(data)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for fn in runners.values():  # warm-up
        fn(cfg, data, 1)
    names = list(runners)
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]  # rotate who goes first
        for name in order:
            times[name].append(runners[name](cfg, data, epochs) / n * 1e6)
    per_batch = {k: statistics.median(v) for k, v in times.items()}
    ratios = {
        k: statistics.median(a / b for a, b in zip(v, times["hand"], strict=True))
        for k, v in times.items()
    }
    return per_batch, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    reps, epochs = (3, 1) if args.quick else (15, 2)
    runners = {"hand": hand, "fit": fit, "start": background, "dash": dashboard}
    print(f"torch {torch.__version__}, threads=1, reps={reps}, epochs={epochs}; per-batch CPU µs")
    print(
        f"{'config':42} {'hand':>7} {'fit':>7} {'fit/hand':>8} {'start':>7} {'start/fit':>9}"
        f" {'dash':>7} {'dash/start':>10}"
    )
    for cfg in CONFIGS:
        us, ratio = measure(cfg, runners, reps, epochs)
        print(
            f"{cfg.name:42} {us['hand']:7.1f} {us['fit']:7.1f} {ratio['fit']:8.3f}"
            f" {us['start']:7.1f} {ratio['start'] / ratio['fit']:9.3f}"
            f" {us['dash']:7.1f} {ratio['dash'] / ratio['start']:10.3f}"
        )


if __name__ == "__main__":
    main()
