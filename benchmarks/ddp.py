"""Per-batch time of luzwidget's fit() under 2-process DDP against a hand-written DDP loop.

    python benchmarks/ddp.py            # launches itself with torchrun, 2 processes, gloo
    python benchmarks/ddp.py --quick    # fewer repetitions

Both run in the same processes, interleaved (hand, fit, hand, fit, ...), on the same model,
data and sampler; each repetition is one fit of ``EPOCHS`` epochs (built from scratch: setup,
DDP wrap, loaders) against the same epochs of the hand loop (also wrapping its model and
building its loader each time). Rank 0 prints the median per-batch wall time of each and
the ratio fit/hand (target <= 1.05). The clock is wall time: a DDP step waits for the other
rank, so CPU time would not see it; on a loaded machine the ratio is noisier than
benchmarks/overhead.py's.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import luzwidget as lw

EPOCHS = 2
BATCH = 64
N = BATCH * 2 * 100  # 100 batches per rank and epoch


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 1))


def hand(dataset: TensorDataset) -> float:
    """Seconds per batch of a plain DDP loop."""
    start = time.perf_counter()
    model = nn.parallel.DistributedDataParallel(make_model())
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sampler = DistributedSampler(dataset, shuffle=False)
    loader = DataLoader(dataset, batch_size=BATCH, sampler=sampler)
    loss_fn = nn.MSELoss()
    n = 0
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        model.train()
        for x, y in loader:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            n += 1
    return (time.perf_counter() - start) / n


def luzwidget_fit(dataset: TensorDataset) -> float:
    """Seconds per batch of the same training through fit() (default callbacks)."""
    start = time.perf_counter()
    spec = lw.setup(make_model(), loss=nn.MSELoss(), optimizer=torch.optim.SGD)
    fitted = spec.set_opt_hparams(lr=0.01).fit(
        dataset,
        epochs=EPOCHS,
        verbose=False,
        dataloader_options={"batch_size": BATCH, "shuffle": False, "drop_last": False},
    )
    n = EPOCHS * len(fitted.ctx.train_data)
    return (time.perf_counter() - start) / n


def worker(reps: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    g = torch.Generator().manual_seed(1)
    dataset = TensorDataset(torch.randn(N, 32, generator=g), torch.randn(N, 1, generator=g))
    hand(dataset), luzwidget_fit(dataset)  # warm up
    times: dict[str, list[float]] = {"hand": [], "fit": []}
    for _ in range(reps):
        times["hand"].append(hand(dataset))
        times["fit"].append(luzwidget_fit(dataset))
    if dist.get_rank() == 0:
        h, f = (statistics.median(times[k]) * 1e6 for k in ("hand", "fit"))
        print(f"2-process DDP (gloo, CPU), mlp 32-256-1, batch {BATCH} per rank, {reps} reps")
        print(f"hand DDP loop  {h:8.1f} us/batch")
        print(f"luzwidget fit  {f:8.1f} us/batch")
        print(f"fit/hand       {f / h:8.3f}")
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    reps = 3 if args.quick else 9
    if "LOCAL_RANK" in os.environ:
        worker(reps)
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        "--master_addr=127.0.0.1", f"--master_port={port}", __file__,
        *(["--quick"] if args.quick else []),
    ]  # fmt: skip
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": "1"}
    sys.exit(subprocess.run(command, env=env, check=False).returncode)


if __name__ == "__main__":
    main()
