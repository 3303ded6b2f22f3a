"""Command to effect: a pause asked of a local run, and of the same run attached over zmq.

    python benchmarks/attach_latency.py [ROUNDS]

A background run of a one-weight model (batches of one sample, each ~0.1-0.3 ms) trains in
this process; ``Serve`` serves it on a free loopback port and ``lw.attach`` attaches to it,
also from this process (one GIL: a pessimistic case for the attached side). Each round
resumes the run, lets it train 50 ms, then asks for a pause and times, with
``time.perf_counter``, from the call to the moment the run's listener sees it paused:

- local: ``run.pause()`` (what a dashboard button in the kernel does);
- attached, click: a dashboard command relayed to the server (``{"cmd": "pause"}``, as
  ``RemoteDashboard`` sends it), not waiting for any answer;
- attached, call: ``proxy.pause()``, which also waits for the server's answer.

It also times one ``proxy.status()`` round trip. Medians and 90th percentiles are printed,
never asserted.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable

import torch
from torch import nn

import luzwidget as lw


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w


def main(rounds: int) -> None:
    torch.set_num_threads(1)
    x = torch.randn(1000)
    batches = list(zip(x.split(1), (2 * x).split(1), strict=True))
    serve = lw.callbacks.Serve(port=0)
    spec = lw.setup(Tiny, loss=nn.MSELoss(), optimizer=torch.optim.SGD).set_opt_hparams(lr=1e-3)
    run = spec.run(batches, epochs=10**6, verbose=False, callbacks=[serve])
    paused = threading.Event()
    run.add_listener(lambda r: paused.set() if r.state == "paused" else None)
    run.start()
    while serve.server is None:
        time.sleep(0.01)
    proxy = lw.attach(serve.address, token=serve.token)
    conn = proxy._conn

    def measure(ask: Callable[[], None]) -> float:
        paused.clear()
        run.start()
        time.sleep(0.05)
        t0 = time.perf_counter()
        ask()
        if not paused.wait(10):
            raise RuntimeError("the run did not pause within 10 s")
        return time.perf_counter() - t0

    ways: dict[str, Callable[[], None]] = {
        "local run.pause()": run.pause,
        "attached, dashboard click": lambda: conn.send(
            {"op": "dash", "content": {"cmd": "pause", "id": "bench"}}
        ),
        "attached, proxy.pause()": proxy.pause,
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    trips: list[float] = []
    for _ in range(rounds):  # interleaved: the machine's load hits every way alike
        for name, ask in ways.items():
            times[name].append(measure(ask))
        t0 = time.perf_counter()
        proxy.status()
        trips.append(time.perf_counter() - t0)
    run.stop()
    proxy.close()
    serve.close()
    print(f"{rounds} rounds each; command to effect (the run seen paused), ms:")
    for name, ts in [*times.items(), ("attached, proxy.status() round trip", trips)]:
        ms = sorted(t * 1000 for t in ts)
        p90 = ms[int(0.9 * (len(ms) - 1))]
        print(f"  {name:38s} median {statistics.median(ms):6.2f}   p90 {p90:6.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
