"""The spill store (SnapshotStore(spill_dir=...)) under faults (issue 23): a directory that
cannot be written never stops training, a file swapped on disk is never restored, a relative
directory survives os.chdir, and spill files live exactly as long as their snapshots (files
of dead processes, half-written ones included, are swept)."""

from __future__ import annotations

import errno
import gc
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import luzwidget as lw
from luzwidget.core.exceptions import CheckpointError
from luzwidget.storage import files
from luzwidget.travel.snapshots import Snapshot, SnapshotStore
from tests.helpers import observable
from tests.training_helpers import Net, make_data, make_spec, same_weights

OPTIONS = {"verbose": False, "dataloader_options": {"batch_size": 8}}
ROOT = Path(__file__).resolve().parents[2]


def make_run(epochs: int = 5) -> lw.Run:
    torch.manual_seed(0)
    return make_spec(Net).run(make_data(64), epochs=epochs, **OPTIONS)


def spilling(spill_dir: Path | str, epochs: int = 5) -> tuple[lw.Run, SnapshotStore]:
    """A run whose store keeps about 3 snapshots in memory and spills the others."""
    run = make_run(epochs)
    run.step("epoch")
    one = run.snapshots[-1].bytes
    run.snapshot_store = store = SnapshotStore(3 * one, spill_dir=spill_dir)
    return run, store


def spill_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def reference(epochs: int = 5) -> lw.Run:
    run = make_run(epochs)
    run.resume()
    return run


# -- a spill that fails ----------------------------------------------------------------------


def _in_the_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "file").write_text("a file where the directory should be")
    return tmp_path / "file" / "snaps"  # mkdir fails: NotADirectoryError


def _full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    return tmp_path / "snaps"


def _torch_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    def writer_failed(*args: object, **kwargs: object) -> None:  # torch's own words for it
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", writer_failed)
    return tmp_path / "snaps"


def _read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if os.geteuid() == 0:
        pytest.skip("root writes into a read-only directory")
    folder = tmp_path / "snaps"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


@pytest.mark.parametrize("fault", [_in_the_way, _full, _torch_full, _read_only])
def test_a_spill_that_fails_is_said_once_and_training_goes_on(
    fault: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before: "TakeSnapshots.on_epoch_end raised OSError", and retry() failed again."""
    clean = reference()
    spill_dir = fault(tmp_path, monkeypatch)  # type: ignore[operator]
    run, store = spilling(spill_dir)
    run.resume()
    assert run.state == "done", run.error
    said = capsys.readouterr().err
    assert said.count("cannot be spilled") == 1, said
    assert "training goes on" in said
    assert store.spill_error is not None
    assert store.bytes <= store.budget
    assert all(s.path is None for s in store.list())
    assert store.list()[0].epoch == 0  # the first is kept; the oldest others went
    assert same_weights(run.ctx.model, clean.ctx.model)  # training was not disturbed
    monkeypatch.undo()  # the disk has room again
    store.spill_dir = tmp_path / "again"  # spilling is on again
    assert store.spill_error is None
    run.extend(3)
    run.resume()
    assert run.state == "done"
    assert spill_files(tmp_path / "again")


# -- identity ---------------------------------------------------------------------------------


def test_two_spill_files_swapped_on_disk_are_refused_not_restored(tmp_path: Path) -> None:
    """Before: rewind(snapshot of epoch 2) silently landed at epoch 4."""
    run, store = spilling(tmp_path / "snaps")
    run.resume()
    spilled = {s.epoch: s for s in store.list() if s.path is not None}
    a, b = spilled[1], spilled[2]
    assert a.path is not None
    assert b.path is not None
    swap = tmp_path / "swap"
    os.replace(a.path, swap)
    os.replace(b.path, a.path)
    os.replace(swap, b.path)
    before = observable(run)
    with pytest.raises(CheckpointError, match=r"holds the snapshot of epoch 2, batch 0, not"):
        run.rewind(a)
    assert observable(run) == before  # nothing restored
    os.unlink(b.path)
    with pytest.raises(CheckpointError, match="is gone"):
        run.rewind(b)
    os.replace(a.path, b.path)  # put b's own file back
    run.rewind(b)
    assert run.ctx.epoch == 2
    run.resume()
    assert same_weights(run.ctx.model, reference().ctx.model)


# -- where and how long -------------------------------------------------------------------------


def test_a_relative_spill_dir_is_resolved_when_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the run's FileNotFoundError after os.chdir."""
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    run, store = spilling("snaps")
    assert store.spill_dir == tmp_path / "snaps"
    monkeypatch.chdir(tmp_path / "elsewhere")
    run.resume()
    spilled = [s for s in store.list() if s.path is not None]
    assert spilled
    assert all(Path(s.path).parent == tmp_path / "snaps" for s in spilled)  # type: ignore[arg-type]
    run.rewind(spilled[0])
    run.resume()
    assert same_weights(run.ctx.model, reference().ctx.model)
    assert not (tmp_path / "elsewhere" / "snaps").exists()


def test_spill_files_live_as_long_as_their_snapshots(tmp_path: Path) -> None:
    """Before: spill files were never removed (14 files stayed after both runs were dropped)."""
    run, store = spilling(tmp_path / "a")
    run.resume()
    names = spill_files(tmp_path / "a")
    assert len(names) == len([s for s in store.list() if s.path is not None]) >= 2
    assert all(n.startswith(f"snapshot-{os.getpid()}-") for n in names)
    in_memory = [s for s in store.list() if s.path is None]
    store.close()
    assert spill_files(tmp_path / "a") == []
    assert store.list() == in_memory

    run, store = spilling(tmp_path / "b")
    run.resume()
    assert spill_files(tmp_path / "b")
    del run, store
    gc.collect()
    assert spill_files(tmp_path / "b") == []  # the run and its store collected


def _snap(epoch: int) -> Snapshot:
    state = {"w": torch.full((15,), float(epoch))}
    return Snapshot(epoch, 0, None, 60, "on_epoch_end", "epoch_end", 0.0, state)


def test_a_snapshot_dropped_for_good_takes_its_file(tmp_path: Path) -> None:
    store = SnapshotStore(budget=100, spill_dir=tmp_path)
    for epoch in range(4):
        store.add(_snap(epoch))
    spilled = [s for s in store.list() if s.path is not None]
    assert [s.epoch for s in spilled] == [1, 2]
    assert torch.equal(spilled[0].load()["w"], torch.full((15,), 1.0))
    assert len(spill_files(tmp_path)) == 2
    store._items.remove(spilled[0])  # evicted for good, as a store may do
    del spilled
    gc.collect()
    assert len(spill_files(tmp_path)) == 1


KILLED_WRITER = """
import os, signal, sys, torch
sys.path.insert(0, {root!r})
from luzwidget.travel.snapshots import Snapshot, SnapshotStore
store = SnapshotStore(budget=100, spill_dir={folder!r})
real_save = torch.save
def save(obj, file):
    if any(n.endswith(".pt") for n in os.listdir({folder!r})):  # the second spill: killed
        file.write(b"half a snapshot")
        file.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    real_save(obj, file)
torch.save = save
for epoch in range(4):
    store.add(Snapshot(epoch, 0, None, 60, "e", "epoch_end", 0.0, {{"w": torch.zeros(15)}}))
"""


def test_files_of_a_process_killed_while_spilling_are_swept_by_the_next_store(
    tmp_path: Path,
) -> None:
    """Before: kill -9 inside a spill write left a .tmp that nobody removed."""
    folder = tmp_path / "snaps"
    folder.mkdir()
    script = KILLED_WRITER.format(root=str(ROOT), folder=str(folder))
    child = subprocess.run(
        [sys.executable, "-c", script], timeout=300, capture_output=True, text=True, check=False
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    left = spill_files(folder)
    assert any(n.endswith(".tmp") for n in left), left  # half written
    assert any(n.endswith(".pt") for n in left), left  # spilled, never removed
    mine = folder / f"snapshot-{os.getpid()}-0123-e1-b0.pt"  # a live process's: kept
    mine.write_bytes(b"")
    (folder / "notes.txt").write_text("not ours")
    SnapshotStore(spill_dir=folder)
    assert spill_files(folder) == sorted([mine.name, "notes.txt"])
    assert files.remove_orphans(tmp_path / "missing", "snapshot-") == []
