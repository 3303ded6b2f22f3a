"""AutoResume: a run killed mid-epoch and started again ends bit-identical to an unbroken one."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.optim.lr_scheduler import StepLR

import luzwidget as lw
from luzwidget.callbacks import AutoResume, EarlyStopping, LRScheduler
from tests.training_helpers import (
    Net,
    NoisyData,
    Script,
    make_data,
    make_spec,
    same_weights,
)

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "tests" / "jobs" / "auto_resume_job.py"
OPTIONS = {"verbose": False, "dataloader_options": {"batch_size": 8}}


# -- a real process, killed with SIGKILL -------------------------------------------------


def start_job(state, out, marker, every, data="noisy"):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, str(JOB), str(state), str(out), str(marker), every, data]
    return subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc, timeout=60):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"the training script failed:\n{out}\n{err}"


def wait_for(marker, proc, deadline):
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the script never reached epoch 2, batch 5:\n{proc.communicate()}")
        time.sleep(0.02)


def test_killed_process_resumes_to_bit_identical_weights(tmp_path):
    """Checkpoints at epoch ends ("-") and every 2 batches ("2"); the processes run side by
    side (one reference: checkpointing does not change training)."""
    reference = start_job(tmp_path / "ref-state.pt", tmp_path / "ref.pt", "-", "-")
    modes = {"-": 0, "2": 4}  # checkpoint interval -> batch of epoch 2 resumed after
    paths = {
        m: (tmp_path / f"state{m}.pt", tmp_path / f"out{m}.pt", tmp_path / f"mark{m}")
        for m in modes
    }
    victims = {m: start_job(*paths[m], m) for m in modes}
    deadline = time.monotonic() + 90
    for m, victim in victims.items():
        wait_for(paths[m][2], victim, deadline)
        os.kill(victim.pid, signal.SIGKILL)  # mid-epoch: hanging at epoch 2, batch 5
        victim.communicate()
        assert victim.returncode == -signal.SIGKILL
        saved = torch.load(paths[m][0], weights_only=True)
        assert (saved["epoch"], saved["position"].get("batch", 0)) == (1, modes[m])

    again = {m: start_job(*paths[m], m) for m in modes}  # the same commands, started again
    for proc in (*again.values(), reference):
        finish(proc)
    expected = torch.load(tmp_path / "ref.pt", weights_only=True)
    for m in modes:
        got = torch.load(paths[m][1], weights_only=True)
        assert same_weights(got["model"], expected["model"]), f"mode {m}: weights differ"
        assert got["records"]["valid"] == expected["records"]["valid"]
        train, train_ref = got["records"]["train"], expected["records"]["train"]
        if m == "-":
            assert train == train_ref
        else:  # the resumed epoch's training metrics cover the batches after the resume
            assert [train[i] for i in (0, 2, 3)] == [train_ref[i] for i in (0, 2, 3)]
        assert not paths[m][0].exists()


def test_killed_process_on_in_memory_tensors_resumes_to_bit_identical_weights(tmp_path):
    """Tensors are batched by index: the order and position ride the same RNG states and
    batch count, so a kill mid-epoch resumes exactly as on a DataLoader."""
    reference = start_job(tmp_path / "ref-state.pt", tmp_path / "ref.pt", "-", "-", "tensors")
    state, out, mark = tmp_path / "state.pt", tmp_path / "out.pt", tmp_path / "mark"
    victim = start_job(state, out, mark, "2", "tensors")
    wait_for(mark, victim, time.monotonic() + 90)
    os.kill(victim.pid, signal.SIGKILL)  # hanging at epoch 2, batch 5
    victim.communicate()
    assert torch.load(state, weights_only=True)["position"]["batch"] == 4
    again = start_job(state, out, mark, "2", "tensors")
    for proc in (again, reference):
        finish(proc)
    got, expected = (torch.load(p, weights_only=True) for p in (out, tmp_path / "ref.pt"))
    assert same_weights(got["model"], expected["model"])
    assert got["records"]["valid"] == expected["records"]["valid"]


# -- the same in one process: a run abandoned mid-epoch ----------------------------------


def fit_job(path, every=None, crash_at=None, epochs=4, extra=(), tensors=False):
    """Train like the script; with ``crash_at=n`` stop after n batches and drop the run;
    ``tensors``: on the tensors themselves (batched by index), not a Dataset with noise.

    An epoch is 8 training and 2 validation batches.
    """
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    x, y = make_data(64)
    cb = AutoResume(path, every_n_batches=every)
    callbacks = [cb, LRScheduler(StepLR, step_size=1, gamma=0.5), *extra]
    run = make_spec(Net).run(
        (x, y) if tensors else NoisyData(x, y),
        epochs=epochs,
        valid_data=make_data(16, seed=1),
        callbacks=callbacks,
        **OPTIONS,
    )
    if crash_at is None:
        run.resume()
        if run.error is not None:
            raise run.error
        assert run.state == "done"
    else:
        run.step("batch", n=crash_at)  # then "crash": the run is never finished
    return run, cb


@pytest.mark.parametrize(("every", "resumed_from"), [(None, (1, 0)), (2, (1, 4)), (3, (1, 3))])
def test_abandoned_run_resumes_exactly(tmp_path, every, resumed_from):
    reference, _ = fit_job(tmp_path / "ref.pt", every)
    path = tmp_path / "state.pt"
    crashed, _ = fit_job(path, every, crash_at=10 + 5)  # epoch 2, training batch 5
    assert (crashed.ctx.epoch, crashed.ctx.iter) == (2, 5)
    resumed, cb = fit_job(path, every)
    assert (cb.resumed_from["epoch"], cb.resumed_from["batch"]) == resumed_from
    assert same_weights(resumed.ctx.model, reference.ctx.model)
    assert resumed.ctx.records["metrics"]["valid"] == reference.ctx.records["metrics"]["valid"]
    lrs = [
        o.param_groups[0]["lr"]
        for o in (resumed.ctx.optimizers["opt"], reference.ctx.optimizers["opt"])
    ]
    assert lrs[0] == lrs[1] == 0.5**4 * 1e-2
    assert not path.exists()
    assert not (tmp_path / "ref.pt").exists()


def test_abandoned_run_on_in_memory_tensors_resumes_exactly(tmp_path):
    reference, _ = fit_job(tmp_path / "ref.pt", 3, tensors=True)
    assert type(reference.ctx.train_data).__name__ == "IndexLoader"
    crashed, _ = fit_job(tmp_path / "state.pt", 3, crash_at=10 + 5, tensors=True)
    assert (crashed.ctx.epoch, crashed.ctx.iter) == (2, 5)
    resumed, cb = fit_job(tmp_path / "state.pt", 3, tensors=True)
    assert (cb.resumed_from["epoch"], cb.resumed_from["batch"]) == (1, 3)
    assert same_weights(resumed.ctx.model, reference.ctx.model)
    assert resumed.ctx.records["metrics"]["valid"] == reference.ctx.records["metrics"]["valid"]


def test_checkpoint_at_each_epoch_end_holds_the_whole_run(tmp_path):
    path = tmp_path / "state.pt"
    run, _ = fit_job(path, crash_at=10 * 2 + 4)  # epoch 3, batch 4
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 2
    run.step("epoch")
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 3
    assert same_weights(state["model"], run.ctx.model)
    assert len(state["records"]["metrics"]["valid"]) == 3
    assert state["callbacks"]["LRScheduler"]["opt"]["last_epoch"] == 3
    assert set(state["rng"]) >= {"torch", "numpy", "python"}
    assert state["position"] == {}


def test_file_is_kept_when_the_fit_is_interrupted(tmp_path):
    path = tmp_path / "state.pt"
    run, _ = fit_job(path, crash_at=12)
    # What fit() does after Ctrl-C: on_interrupt, then on_fit_end.
    run.ctx.call_callbacks("on_interrupt")
    run.ctx.call_callbacks("on_fit_end")
    assert path.exists()


def test_file_is_deleted_after_early_stopping(tmp_path):
    path = tmp_path / "state.pt"
    stopper = EarlyStopping(monitor="valid_fake_loss")
    fit_job(path, extra=[Script([3, 4, 5, 6]), stopper])
    assert stopper.stopped_epoch == 2
    assert not path.exists()


def test_resume_restores_other_callbacks_state(tmp_path):
    path = tmp_path / "state.pt"
    values = [3, 2, 2.5, 2.6]
    fit_job(
        path,
        crash_at=10 * 3 + 1,
        extra=[Script(values), EarlyStopping(monitor="valid_fake_loss", patience=5)],
    )
    stopper = EarlyStopping(monitor="valid_fake_loss", patience=5)
    fit_job(path, extra=[Script(values), stopper])  # runs epoch 4 only
    # Without the restored state it would have started over: best 2.6 at epoch 4.
    assert (stopper.best, stopper.best_epoch, stopper.wait) == (2, 2, 2)


def test_a_corrupt_state_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "state.pt"
    fit_job(path, crash_at=12)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(lw.CallbackError) as info:
        fit_job(path)
    assert isinstance(info.value.cause, lw.CheckpointError)
    assert str(path) in str(info.value)


def test_bad_every_n_batches():
    with pytest.raises(lw.ConfigError, match="every_n_batches"):
        AutoResume(every_n_batches=0)


def test_a_file_written_with_adam_is_refused_by_sgd_naming_both(tmp_path):
    path = tmp_path / "state.pt"
    fit_job(path, crash_at=12)  # Adam, epoch 1 saved
    x, y = make_data(64)
    spec = lw.setup(Net, loss=torch.nn.CrossEntropyLoss(), optimizer=torch.optim.SGD)
    with pytest.raises(lw.CallbackError) as info:
        spec.set_opt_hparams(lr=0.1, momentum=0.9).fit(
            (x, y), epochs=3, callbacks=[AutoResume(path)], **OPTIONS
        )
    assert isinstance(info.value.cause, lw.CheckpointError)
    assert "saved as Adam" in str(info.value.cause)
    assert "the run's is SGD" in str(info.value.cause)


def test_tmp_files_a_kill_left_are_removed_when_the_fit_ends(tmp_path):
    path = tmp_path / "state.pt"
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a writer that is gone, as after a kill -9 inside a write
    stale = tmp_path / f".state.pt.{proc.pid}.tmp"
    stale.write_bytes(b"half a checkpoint")
    fit_job(path, epochs=0)  # no epoch, so no write: only the end of the fit cleans up
    assert not stale.exists()


@pytest.mark.parametrize("every", [None, 2])
def test_a_rewind_inside_epoch_1_replays_from_the_start_not_from_the_file(tmp_path, every):
    reference, _ = fit_job(tmp_path / "ref.pt", every, epochs=2)
    run, cb = fit_job(tmp_path / "state.pt", every, crash_at=6, epochs=2)  # epoch 1, batch 6
    if every:
        assert (tmp_path / "state.pt").exists()  # written at batch 2 and 4 of this fit
    run.rewind(batches=3)  # epoch 1, batch 3: replayed from the start, the file not read
    assert (run.ctx.epoch, run.ctx.iter) == (1, 3)
    assert cb.resumed_from is None
    run.resume()
    assert run.state == "done"
    assert same_weights(run.ctx.model, reference.ctx.model)
    assert run.ctx.records["metrics"] == reference.ctx.records["metrics"]


def test_a_resumed_fit_rewound_to_its_start_resumes_from_the_same_file_again(tmp_path):
    reference, _ = fit_job(tmp_path / "ref.pt", 2, epochs=2)
    path = tmp_path / "state.pt"
    fit_job(path, 2, crash_at=5, epochs=2)  # the file holds epoch 1, batch 4
    run, cb = fit_job(path, 2, crash_at=10 + 3, epochs=2)  # resumed; it wrote the file since
    assert cb.resumed_from == {"epoch": 0, "batch": 4}
    run.rewind(run.snapshots[0])  # the run's start: it begins as it first began
    run.step("batch")  # from the file as it was then (batch 4), not as it is now (epoch 2)
    assert (run.ctx.epoch, run.ctx.iter) == (1, 5)
    run.resume()
    assert same_weights(run.ctx.model, reference.ctx.model)
    assert run.ctx.records["metrics"]["valid"] == reference.ctx.records["metrics"]["valid"]
