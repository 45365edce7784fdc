"""Shared training: a run killed mid-way continues from its resume file to the same weights; progress reaches the log."""

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
from gensynth.madness.data import load_real_data, save_real_data
from gensynth.seeding import torch_generator
from gensynth.training import ResumeFile, train_epochs

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


def test_madness_training_killed_by_a_signal_resumes_to_an_uninterrupted_runs_weights(tmp_path):
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
        "--checkpoint-every",
        "0",
    ]

    def command(name):
        return [*base, "--out", str(tmp_path / f"{name}.ckpt"), "--out-info", str(tmp_path / f"{name}.json")]

    subprocess.run(command("straight"), env=ENV, check=True, capture_output=True, timeout=300)
    job = subprocess.Popen(command("killed"), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    resume = tmp_path / ".killed.ckpt.resume"
    deadline = time.monotonic() + 240
    while not resume.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(job.pid, signal.SIGKILL)
    job.wait(timeout=30)
    assert resume.exists() and not (tmp_path / "killed.ckpt").exists(), "killed after its first resumable checkpoint"
    rerun = subprocess.run(command("killed"), env=ENV, check=True, capture_output=True, text=True, timeout=300)
    assert "resuming after epoch" in rerun.stderr
    assert not resume.exists(), "a finished job removes its resume file"
    straight, resumed = (load_model_checkpoint(tmp_path / f"{name}.ckpt", use_ema=False).state for name in ("straight", "killed"))
    assert straight["extra"]["epoch_losses"] == resumed["extra"]["epoch_losses"]
    for name in ("model", "ema_model"):
        for key, value in straight[name].items():
            assert np.array_equal(value.numpy(), resumed[name][key].numpy()), f"{name}.{key}"
