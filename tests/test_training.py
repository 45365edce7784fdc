"""Shared training: a run killed or stopped by a signal mid-way continues from its resume file to the same weights;
progress reaches the log, each epoch's record the job's epochs log."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import ENV, ROOT
from gensynth.diffusion import DiffusionTrainConfig, UNetConfig, build_model, diffusion_trainer, load_model_checkpoint, make_train_scheduler
from gensynth.errors import GensynthError
from gensynth.io import load_checkpoint
from gensynth.madness.data import load_real_data, save_real_data
from gensynth.provenance import LOG_ENV
from gensynth.seeding import torch_generator
from gensynth.training import EpochsLog, ResumeFile, train_epochs

CFG = UNetConfig(sample_size=8, in_channels=1, out_channels=1, num_classes=2, block_out_channels=(8, 16), attention=False)


class Killed(Exception):
    pass


def fresh_trainer():
    torch.manual_seed(0)
    return diffusion_trainer(build_model(CFG), make_train_scheduler(50), DiffusionTrainConfig(batch_size=4, seed=3))


def data():
    g = torch_generator(1)
    return torch.rand(12, 1, 8, 8, generator=g) * 2 - 1, torch.randint(0, 2, (12,), generator=g)


def test_a_killed_run_resumes_to_the_same_weights(tmp_path):
    x, y = data()
    straight = fresh_trainer()
    history = train_epochs(straight, 5, lambda n: {"loss": straight.train_epoch(x, y)})

    resume = ResumeFile(tmp_path / ".model.resume", "fingerprint", every_s=0)
    killed = fresh_trainer()

    def epoch_then_kill(number):
        if number == 4:
            raise Killed  # the walltime limit, after epoch 3's resume file was written
        return {"loss": killed.train_epoch(x, y)}

    with pytest.raises(Killed):
        train_epochs(killed, 5, epoch_then_kill, resume=resume)
    rerun = fresh_trainer()
    resumed = train_epochs(rerun, 5, lambda n: {"loss": rerun.train_epoch(x, y)}, resume=resume)
    assert [r["epoch"] for r in resumed] == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in resumed] == [r["loss"] for r in history]
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(rerun.model.state_dict()[name], value, rtol=0, atol=0)
    torch.testing.assert_close(rerun.ema_state_dict(), straight.ema_state_dict(), rtol=0, atol=0)

    # another run's file is not resumed from
    other = fresh_trainer()
    assert len(train_epochs(other, 1, lambda n: {"loss": other.train_epoch(x, y)}, resume=ResumeFile(resume.path, "other"))) == 1


def untimed(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "attempt")} for r in history]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_signal_ends_training_at_the_next_step_and_the_rerun_resumes_to_the_same_weights(tmp_path, monkeypatch, signum):
    """SLURM's walltime or preemption signal mid-epoch: the step in flight finishes, the last finished epoch's
    state is saved (no periodic save was due), one error says the job will resume; the rerun ends identical."""
    x, y = data()  # 12 images in batches of 4: 3 steps per epoch
    straight = fresh_trainer()
    history = train_epochs(straight, 5, lambda n: {"loss": straight.train_epoch(x, y)})

    monkeypatch.setenv(LOG_ENV, str(tmp_path / "train.log"))
    resume = ResumeFile(tmp_path / ".model.resume", "fingerprint", every_s=1e9)
    stopped = fresh_trainer()
    steps_at_signal = []

    def epoch(number):
        if number == 3:
            batches = stopped.batches(x, y)
            stopped.train_step(*next(batches))
            steps_at_signal.append(stopped.step)
            os.kill(os.getpid(), signum)
            for batch in batches:
                stopped.train_step(*batch)
            pytest.fail("trained on after the signal")
        return {"loss": stopped.train_epoch(x, y)}

    with pytest.raises(GensynthError, match=f"stopped by {signal.Signals(signum).name} after epoch 2 of 5; .* next attempt resumes"):
        train_epochs(stopped, 5, epoch, resume=resume, desc="training")
    assert stopped.step == steps_at_signal[0] + 1 == 8, "training ends at the step boundary after the signal"
    saved = load_checkpoint(resume.path)
    assert [r["epoch"] for r in saved["history"]] == [1, 2] and saved["trainer"]["step"] == 6 and saved["attempt"] == 1
    assert signal.getsignal(signum) is signal.SIG_DFL, "the handlers are put back"

    rerun = fresh_trainer()
    resumed = train_epochs(rerun, 5, lambda n: {"loss": rerun.train_epoch(x, y)}, resume=resume, desc="training")
    assert untimed(resumed) == untimed(history) and [r["attempt"] for r in resumed] == [1, 1, 2, 2, 2]
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(rerun.model.state_dict()[name], value, rtol=0, atol=0)
    torch.testing.assert_close(rerun.ema_state_dict(), straight.ema_state_dict(), rtol=0, atol=0)

    records = EpochsLog(tmp_path / "train.epochs.jsonl", "training").records()
    assert [{k: v for k, v in r.items() if k != "run"} for r in records] == resumed, "the final history is the lines written"
    assert {r["run"] for r in records} == {"training"} and all(r["seconds"] >= 0 for r in records)


def test_the_epochs_log_keeps_other_runs_and_restarts_a_run_trained_afresh(tmp_path, monkeypatch):
    monkeypatch.setenv(LOG_ENV, str(tmp_path / "job.log"))
    x, y = data()
    for run in ("seed 0", "seed 1", "seed 0"):
        trainer = fresh_trainer()
        train_epochs(trainer, 2, lambda n, trainer=trainer: {"loss": trainer.train_epoch(x, y)}, desc=run)
    records = EpochsLog(tmp_path / "job.epochs.jsonl", "").records()
    assert [(r["run"], r["epoch"]) for r in records] == [("seed 1", 1), ("seed 1", 2), ("seed 0", 1), ("seed 0", 2)]


def test_early_stopping_ends_the_run_and_a_rerun_does_not_train_again(tmp_path):
    x, y = data()
    trainer = fresh_trainer()
    resume = ResumeFile(tmp_path / ".r", "f", every_s=0)
    calls = []

    def epoch(number):
        calls.append(number)
        return {"loss": trainer.train_epoch(x, y)}

    history = train_epochs(trainer, 10, epoch, resume=resume, stop=lambda h: len(h) >= 3)
    assert len(history) == 3 and calls == [1, 2, 3]
    rerun = fresh_trainer()
    assert len(train_epochs(rerun, 10, lambda n: pytest.fail("trained again"), resume=resume, stop=lambda h: len(h) >= 3)) == 3


def test_progress_lines_reach_a_log_that_is_no_terminal(caplog):
    x, y = data()
    trainer = fresh_trainer()
    with caplog.at_level(logging.INFO, logger="gensynth.progress"):
        train_epochs(trainer, 3, lambda n: {"loss": trainer.train_epoch(x, y)}, desc="training", log_every_s=0)
    lines = [r.getMessage() for r in caplog.records if r.name == "gensynth.progress"]
    assert len(lines) == 3 and lines[-1].startswith("training: epoch 3/3, step 9, loss ") and "s/epoch, ETA 0m00s" in lines[-1]


def test_madness_training_stopped_by_sigterm_resumes_to_an_uninterrupted_runs_weights(tmp_path):
    """A job at its walltime: SIGTERM mid-training (no periodic checkpoint due), a prompt exit with one line,
    no artifact, and the rerun resumes to the uninterrupted run's weights; the epochs log shows it live."""
    save_real_data(tmp_path / "real.npz", load_real_data("digits", 8, seed=0, max_train=160, max_test=40))
    base = [
        sys.executable,
        str(ROOT / "scripts/madness_train_initial.py"),
        "--data",
        str(tmp_path / "real.npz"),
        "--n-epoch",
        "6",
        "--block-out-channels",
        "8",
        "8",
        "--n-t",
        "50",
        "--batch-size",
        "16",
        "--device",
        "cpu",
    ]

    def command(name):
        return [*base, "--out", str(tmp_path / f"{name}.ckpt"), "--out-info", str(tmp_path / f"{name}.json")]

    subprocess.run(command("straight"), env=ENV, check=True, capture_output=True, timeout=300)
    env = {**ENV, LOG_ENV: str(tmp_path / "killed.log")}
    job = subprocess.Popen(command("killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    epochs_log, resume = EpochsLog(tmp_path / "killed.epochs.jsonl", "training"), tmp_path / ".killed.ckpt.resume"
    deadline = time.monotonic() + 240
    while len(epochs_log.records()) < 2 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not resume.exists(), "no periodic checkpoint was due"
    os.kill(job.pid, signal.SIGTERM)
    signalled = time.monotonic()
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 2 and time.monotonic() - signalled < 20, "a prompt exit, non-zero"
    assert stderr.strip().splitlines()[-1].startswith("error: training: stopped by SIGTERM after epoch ")
    assert resume.exists() and not (tmp_path / "killed.ckpt").exists(), "its state saved, no artifact"
    rerun = subprocess.run(command("killed"), env=env, check=True, capture_output=True, text=True, timeout=300)
    assert "resuming after epoch" in rerun.stderr
    records = epochs_log.records()
    assert [r["epoch"] for r in records] == list(range(1, 7)) and {r["attempt"] for r in records} == {1, 2}
    assert not resume.exists(), "a finished job removes its resume file"
    straight, resumed = (load_model_checkpoint(tmp_path / f"{name}.ckpt", use_ema=False).state for name in ("straight", "killed"))
    assert straight["extra"]["epoch_losses"] == resumed["extra"]["epoch_losses"]
    for name in ("model", "ema_model"):
        for key, value in straight[name].items():
            assert np.array_equal(value.numpy(), resumed[name][key].numpy()), f"{name}.{key}"
