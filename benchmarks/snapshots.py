"""The cost of one snapshot (and one rewind) of a run, and of default snapshots per epoch.

    python benchmarks/snapshots.py

For the digits MLP (64-128-10, Adam) and a ~10M-parameter MLP (2000-2500-2000, Adam), on
the CPU: the bytes one snapshot holds (weights and both Adam moments, copied), the median
wall time of taking one and of rewinding to one (``time.perf_counter``), and for the
digits MLP the time per training batch of a run with the default automatic snapshots (its
start, every epoch end) against one without, trials alternated, medians of 7. The load
average is printed first: on a shared machine compare the ratio, not the times. Printed,
never asserted.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import luzwidget as lw
from luzwidget.travel.snapshots import EPOCH_END, capture_snapshot


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


def batch_cost(every: str | None, epochs: int = 8) -> tuple[float, float]:
    """CPU seconds per training batch of a digits-MLP run resumed to its end, with the
    default automatic snapshots (``"epoch"``) or none (None), the first epoch a warm-up;
    and the share of that time the snapshots took (their own timings)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    run = make_run(model, digits(), epochs)
    run.snapshot_store.every = every
    run.step("epoch")  # warm up
    taken = len(run.snapshots)
    began, wall = time.process_time(), time.perf_counter()
    run.resume()
    cpu, wall = time.process_time() - began, time.perf_counter() - wall
    share = sum(s.seconds for s in run.snapshots[taken:]) / wall
    return cpu / ((epochs - 1) * len(run.ctx.train_data)), share


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine?)")
    mlp = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    snapshot_cost("digits MLP 64-128-10", mlp, digits())
    big = nn.Sequential(nn.Linear(2000, 2500), nn.ReLU(), nn.Linear(2500, 2000))
    snapshot_cost("MLP 2000-2500-2000", big, big_data())
    on, off, shares = [], [], []
    for _ in range(7):  # alternated, so that a load change hits both alike
        cost, share = batch_cost("epoch")
        on.append(cost)
        shares.append(share)
        off.append(batch_cost(None)[0])
    a, b = statistics.median(on), statistics.median(off)
    print(
        f"digits per batch (28 batches of 64 an epoch, CPU time, medians of 7): default "
        f"snapshots {a * 1e6:.1f} us, none {b * 1e6:.1f} us, ratio {a / b:.3f}; the "
        f"snapshots' own time: {statistics.median(shares) * 100:.2f}% of the run"
    )


if __name__ == "__main__":
    main()
