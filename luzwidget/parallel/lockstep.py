"""Several processes, one run: global records, commands applied in step, faults that never hang.

:func:`install` is called for every run whose accelerator has a
:class:`~luzwidget.core.distributed.World` (see ``session.build_run``). It adds a
:class:`Lockstep` callback and installs it as the run's ``features.instep``, which the
run's boundary policy asks at every command (``relay``) and every decision (``follow``):

- **Records**: at ``on_train_end`` and ``on_valid_end`` (before ``Metrics`` logs) each
  metric's sums and counts are added up across ranks, in one ``all_reduce`` per set and
  epoch, so every rank logs the same, global, values. Nothing collective runs per batch.
- **Commands** are accepted on rank 0. There the boundary's ``relay`` holds a command back
  and posts, in the process group's store, the training batch at which every rank applies
  it: the next multiple of ``POLL_EVERY`` at least two batches ahead (DDP's gradient
  all_reduce keeps the ranks within one batch of each other). The other ranks look at one
  counter in the store every ``POLL_EVERY`` batches. A command still pending at the epoch's
  end travels in the metrics' all_reduce and is applied at ``on_train_end`` (or
  ``on_valid_end``). At that boundary rank 0 applies the command and publishes what
  resulted (every optimizer's hyperparameters, ``max_epochs``, ``min_epochs``, pause or
  stop); the other ranks wait for it and take it over.
- **Pause, step, breakpoints**: after a pause (and from the fit's start, sync 0, when rank
  0 starts stepping or with breakpoints), rank 0 publishes its decision at every event (go,
  pause, stop, or ``free`` once it runs freely again) and the other ranks follow event by
  event, so they wait at the very boundary rank 0 is paused at. A breakpoint set while
  running takes effect from the next agreed batch.
- **Faults**: a rank whose run fails posts ``(rank, error)`` in the store; a watcher thread
  on rank 0 reports it at once, wherever rank 0 is, and every wait in here gives up when a
  fault is posted. Collectives time out (``Accelerator(timeout_s=...)``), so a dead rank
  stops the group in bounded time, and torchrun ends the others. The watcher runs while
  the run can still go on (running or paused); it is stopped and joined when the run fails
  or ends, and at the interpreter's exit: a daemon thread caught inside a torch store call
  while Python finalizes aborts the process (``terminate called without an active
  exception``, SIGABRT) instead of letting it exit with its error.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import math
import threading
import time
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from luzwidget.control.boundary import STOP, Boundary, Command, Control
from luzwidget.core.callback import Callback
from luzwidget.core.distributed import World
from luzwidget.core.events import Event
from luzwidget.core.states import Outcome, RunState
from luzwidget.parallel.distributed_sums import pack, unpack
from luzwidget.parallel.faults import FaultWatch, GroupError

if TYPE_CHECKING:
    from luzwidget.control.run import Run
    from luzwidget.core.context import Context

__all__ = ["POLL_EVERY", "GroupError", "Lockstep", "install"]

_RUNS = itertools.count(1)

POLL_EVERY = 4
"""Training batches between two looks at the store on ranks other than 0."""

_WAIT = datetime.timedelta(seconds=1)  # one wait in the store, between looks for a fault


def install(run: Run, world: World) -> Lockstep:
    """Keep ``run`` in step with the same run on the other ranks of ``world``."""
    lockstep = Lockstep(world, run.boundary)
    lockstep.run = run
    run.ctx.callbacks = [*run.ctx.callbacks, lockstep]
    run.features.instep = lockstep
    if world.main:
        lockstep.faults.watch()
    run.add_listener(lockstep.state_changed)
    return lockstep


class Lockstep(Callback):
    """The run's side of several processes (see the module's docstring); one per run.

    ``seen`` lists, on every rank, where each agreed command was applied and where the
    ranks paused together afterwards: ``(sync number, event, epoch, batch)``.
    """

    run_bound = True  # luzwidget's own, for this run only: a branch does not copy it

    weight = -90  # its on_train_end/on_valid_end reduce before Metrics logs (-80)

    def __init__(self, world: World, boundary: Boundary) -> None:
        self.world, self.boundary = world, boundary
        self.store = world.store
        # Every rank builds its runs in the same order (the same script): the n-th run of
        # each process is one run, with its own keys.
        self.prefix = f"{world.prefix}run{next(_RUNS)}/"
        self.batches = 0  # training batches begun in this fit, on every rank alike
        self.synced = 0  # the last sync applied
        self.pending: tuple[int, int] | None = None  # rank 0: (sync, batch) posted, not applied
        self.held: list[Command] = []  # rank 0: the commands held for it
        self.due: dict[int, int] = {}  # other ranks: sync -> batch
        self.syncing: int | None = None  # the sync to apply at this event (0: the fit's start)
        self.following: list[int] | None = None  # [sync, event count] while in step by event
        self.seen: list[tuple[int, str, int, int]] = []
        self.ctx: Context | None = None
        self.run: Run | None = None
        self._lock = threading.Lock()
        self._fault_posted = False
        self.faults = FaultWatch(world, self.prefix)

    @property
    def leads(self) -> bool:
        """Rank 0 takes the commands and relays them; the other ranks follow it."""
        return self.world.main

    def key(self, name: str) -> str:
        return self.prefix + name

    # -- data and records ----------------------------------------------------------------
    def on_fit_begin(self, ctx: Context) -> None:
        """Sync 0: every rank learns whether rank 0 starts stepping or with breakpoints."""
        self.ctx = ctx
        self._sync_here(0)

    def on_epoch_begin(self, ctx: Context) -> None:
        for loader in (ctx.train_data, ctx.valid_data):
            sampler = getattr(loader, "sampler", None)
            if isinstance(sampler, DistributedSampler):
                sampler.set_epoch(ctx.epoch)  # a new order each epoch, the same on every rank

    def on_train_end(self, ctx: Context) -> None:
        self._reduce(ctx, "train")

    def on_valid_end(self, ctx: Context) -> None:
        self._reduce(ctx, "valid")

    def _reduce(self, ctx: Context, mode: str) -> None:
        """One all_reduce: every metric's sums and counts, and rank 0's pending command."""
        metrics = list(ctx.metrics.get(mode, []))
        values: list[float] = [0.0]
        if self.world.main and self.pending is not None:
            values[0] = float(self.pending[0])
        packed = [pack(m) for m in metrics]
        for part in packed:
            values.extend(part)
        flat = torch.tensor(values, dtype=torch.float64)
        backend = dist.get_backend()
        device = self.world.device if backend == "nccl" else torch.device("cpu")
        flat = flat.to(device)
        dist.all_reduce(flat)
        total = flat.cpu().tolist()
        at = 1
        for metric, part in zip(metrics, packed, strict=True):
            unpack(metric, total[at : at + len(part)])
            at += len(part)
        pending = int(total[0])
        if pending > self.synced:
            self._sync_here(pending)

    # -- commands ------------------------------------------------------------------------
    def relay(self, command: Command) -> bool:
        """Rank 0: hold ``command`` for a boundary agreed with the other ranks (True), or
        let it apply here at the next event (False: while in step event by event)."""
        if self.following is not None:
            return False
        with self._lock:
            self.held.append(command)
            if self.pending is None:
                sync = self.synced + 1
                at = (self.batches + 2 + POLL_EVERY - 1) // POLL_EVERY * POLL_EVERY
                self.store.set(self.key(f"sync/{sync}"), str(at))
                self.store.add(self.key("syncs"), 1)
                self.pending = (sync, at)
        return True

    def on_train_batch_begin(self, ctx: Context) -> None:
        self.batches = batches = self.batches + 1
        if batches % POLL_EVERY:
            return
        if self.world.main:
            pending = self.pending
            if pending is not None and pending[1] == batches:
                self._sync_here(pending[0])
            return
        posted = int(self.store.add(self.key("syncs"), 0))  # one look: a counter
        for sync in range(max(self.synced, max(self.due, default=0)) + 1, posted + 1):
            self.due[sync] = int(self.store.get(self.key(f"sync/{sync}")))
        for sync, at in sorted(self.due.items()):
            if at == batches:
                self._sync_here(sync)

    def _sync_here(self, sync: int) -> None:
        """Apply sync ``sync`` at this event, on this rank (the boundary does it)."""
        self.syncing = sync
        self.due.pop(sync, None)
        if self.world.main:
            with self._lock:
                held, self.held, self.pending = self.held, [], None
            self.boundary.deliver(held)
        self.boundary.listen()  # the loop yields at this event

    def follow(self, event: Event, outcome: Outcome | None) -> Outcome | None:
        """At every decision of the boundary: publish (rank 0) or take over (the others)
        what was decided at ``event``."""
        if self.syncing is None and self.following is None:
            return self._alone(outcome) if self.world.main else outcome
        if self.world.main:
            return self._lead(event, outcome)
        return self._follow(event, outcome)

    def _alone(self, outcome: Outcome | None) -> Outcome | None:
        """Rank 0, running freely: a pause decided here alone (a breakpoint set meanwhile,
        Ctrl-C) becomes a pause agreed with the others; breakpoints make the ranks follow
        event by event from the agreed batch on."""
        if outcome is not None and outcome is not STOP and outcome.state == RunState.PAUSED:
            self.relay(Control("pause", f"{outcome.reason}, then every rank paused"))
            return None
        if self.boundary.breakpoints and self.pending is None:
            self.relay(_nothing)
        return outcome

    def _lead(self, event: Event, outcome: Outcome | None) -> Outcome | None:
        action = _action(outcome)
        if self.syncing is not None:
            sync, self.syncing = self.syncing, None
            self._applied(sync, event)
            if action == "go" and self._listening_wanted():
                action = "follow"  # stepping or breakpoints: in step event by event
            self.store.set(self.key(f"state/{sync}"), self._message(action))
            if action in ("pause", "follow"):
                self.following = [sync, 0]
            return outcome
        assert self.following is not None
        free = action == "go" and not self._listening_wanted()
        self._publish("free" if free else action)
        if action == "pause":
            self._applied(self.following[0], event)
        if free:
            self.following = None
        return outcome

    def _publish(self, action: str) -> None:
        assert self.following is not None
        self.following[1] += 1
        sync, k = self.following
        self.store.set(self.key(f"event/{sync}/{k}"), self._message(action))

    def _follow(self, event: Event, outcome: Outcome | None) -> Outcome | None:
        if self.syncing is not None:
            sync, self.syncing = self.syncing, None
            message = self._take(self.key(f"state/{sync}"))
            self._applied(sync, event)
            if message["action"] in ("pause", "follow"):
                self.following = [sync, 0]
        else:
            assert self.following is not None
            self.following[1] += 1
            message = self._take(self.key("event/{}/{}".format(*self.following)))
            if message["action"] == "pause":
                self._applied(self.following[0], event)
            if message["action"] == "free":
                self.following = None
        if message["action"] == "stop":
            self.following = None
            return STOP
        if self.following is not None:
            self.boundary.listen()  # in step: the next event comes here too
        return outcome

    def _applied(self, sync: int, event: Event) -> None:
        self.synced = max(self.synced, sync)
        if sync == 0:
            return  # the fit's start: nothing applied
        ctx = self.boundary.ctx
        self.seen.append((sync, event.value, int(ctx.epoch), int(ctx.iter)))

    def _listening_wanted(self) -> bool:
        return self.boundary.busy()

    def on_fit_end(self, ctx: Context) -> None:
        if self.world.main and self.following is not None:
            self._publish("stop")  # e.g. run.stop() while paused: the others end too
            self.following = None
        self.faults.unwatch()

    # -- what every rank takes over from rank 0 --------------------------------------------
    def _message(self, action: str) -> str:
        ctx = self.boundary.ctx
        groups = {
            name: [
                {k: v for k, v in g.items() if k != "params" and _plain_number(v)}
                for g in opt.param_groups
            ]
            for name, opt in ctx.optimizers.items()
        }
        state = {"optimizers": groups, "max_epochs": ctx.max_epochs, "min_epochs": ctx.min_epochs}
        return json.dumps({"action": action, "state": state})

    def _take(self, key: str) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self._wait(key))
        ctx = self.boundary.ctx
        state = message["state"]
        for name, groups in state["optimizers"].items():
            for group, values in zip(ctx.optimizers[name].param_groups, groups, strict=False):
                group.update(values)
        low, high = int(state["min_epochs"]), int(state["max_epochs"])
        if low > ctx.max_epochs:
            ctx.max_epochs, ctx.min_epochs = high, low
        else:
            ctx.min_epochs, ctx.max_epochs = low, high
        return message

    def _wait(self, key: str) -> str:
        """The value of ``key`` once rank 0 has set it; raises GroupError on a fault."""
        pause, faults = 0.0005, self.key("fault")
        while True:
            if self.store.check([key]):
                return bytes(self.store.get(key)).decode()
            if self.store.check([faults]):
                fault = self.faults.posted()
                assert fault is not None
                raise GroupError(f"stopped because rank {fault['rank']} failed: {fault['error']}")
            time.sleep(pause)  # a few polls while rank 0 is at the same event; slower in a pause
            pause = min(pause * 2, 0.05)

    def detach(self) -> None:
        """Take lockstep out of its run (callback, listener, the fault watcher)."""
        self.faults.unwatch()
        run = self.run
        if run is None:
            return
        run.remove_listener(self.state_changed)
        if any(cb is self for cb in run.ctx.callbacks):
            run.remove_callback(self)
        if run.features.instep is self:
            run.features.instep = None

    # -- faults --------------------------------------------------------------------------
    def state_changed(self, run: Run) -> None:
        """Listener: the watcher runs while the run can go on; a run that fails here posts
        the fault for rank 0 and the others."""
        if run.state in (RunState.ERROR, RunState.DONE):
            self.faults.unwatch()
        elif self.world.main and run.state == RunState.RUNNING:
            self.faults.watch()  # again after a retry
        if run.state != RunState.ERROR or self._fault_posted:
            return
        if isinstance(run.error, GroupError):
            return
        self._fault_posted = True
        text = str(run.error)  # a LuzwidgetError names the callback, event, epoch and batch
        with contextlib.suppress(Exception):
            self.store.set(self.key("fault"), json.dumps({"rank": self.world.rank, "error": text}))
            if not self.world.main:  # give rank 0's watcher the moment it needs to report it
                for _ in range(100):
                    if self.store.check([self.key("fault_seen")]):
                        break
                    time.sleep(0.1)


def _nothing() -> None:
    """A command that changes nothing: it makes the ranks agree on a boundary."""


def _action(outcome: Outcome | None) -> str:
    if outcome is STOP:
        return "stop"
    if outcome is not None and outcome.state == RunState.PAUSED:
        return "pause"
    return "go"


def _plain_number(value: Any) -> bool:
    return isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value))
