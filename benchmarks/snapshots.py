"""The cost of one snapshot (and one rewind) of a run, and of default snapshots per epoch.

    python benchmarks/snapshots.py

For the digits MLP (64-128-10, Adam) and a ~10M-parameter MLP (2000-2500-2000, Adam), on
the CPU: the bytes one snapshot holds (weights and both Adam moments, copied), the median
wall time of taking one and of rewinding to one (``time.perf_counter``), and for the
digits MLP the time of an epoch with automatic epoch-end snapshots (the default) against
one without. Printed, never asserted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import luzwidget as lw
from luzwidget.snapshots import EPOCH_END, capture_snapshot


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # the same shapes
        g = torch.Generator().manual_seed(0)
        return torch.randn(1797, 64, generator=g), torch.randint(0, 10, (1797,), generator=g)
    d = load_digits()
    x = torch.tensor((d.data - d.data.mean(0)) / (d.data.std(0) + 1e-6), dtype=torch.float32)
    return x, torch.tensor(d.target)


def big_data(n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 2000, generator=g), torch.randint(0, 2000, (n,), generator=g)


def make_run(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], epochs: int) -> lw.Run:
    spec = lw.setup(model, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam)
    options = {"batch_size": 64}
    return spec.set_opt_hparams(lr=1e-3).run(
        data, epochs=epochs, verbose=False, dataloader_options=options
    )


def median_s(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def snapshot_cost(name: str, model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> None:
    run = make_run(model, data, epochs=2)
    run.step("epoch")  # Adam's moments exist now
    n_params = sum(p.numel() for p in model.parameters())
    snap = capture_snapshot(run, None, EPOCH_END)
    take = median_s(lambda: capture_snapshot(run, None, EPOCH_END), 7)
    run.snapshot_store.budget = 64 * snap.bytes
    s = run.snapshot("bench")
    back = median_s(lambda: run.rewind(s), 7)
    print(
        f"{name:<22} {n_params / 1e6:8.3f}M params  {snap.bytes / 2**20:8.2f} MiB/snapshot  "
        f"take {take * 1e3:8.2f} ms  rewind {back * 1e3:8.2f} ms"
    )


def epoch_cost(every: str | None, epochs: int = 8) -> float:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    run = make_run(model, digits(), epochs)
    run.snapshot_store.every = every
    run.step("epoch")  # warm up
    began = time.perf_counter()
    run.resume()
    return (time.perf_counter() - began) / (epochs - 1)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    snapshot_cost("digits MLP 64-128-10", mlp, digits())
    big = nn.Sequential(nn.Linear(2000, 2500), nn.ReLU(), nn.Linear(2500, 2000))
    snapshot_cost("MLP 2000-2500-2000", big, big_data())
    on = statistics.median(epoch_cost("epoch") for _ in range(3))
    off = statistics.median(epoch_cost(None) for _ in range(3))
    print(
        f"digits epoch (28 batches of 64): snapshots at epoch ends {on * 1e3:.2f} ms, "
        f"off {off * 1e3:.2f} ms, ratio {on / off:.3f}"
    )


if __name__ == "__main__":
    main()
