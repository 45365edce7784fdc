"""Training shared by every model of the pipeline: AdamW, an EMA of the weights, state that resumes a run exactly.

A :class:`Trainer` knows nothing of what it trains: its ``loss(model, batch, generator)`` computes the
loss of one minibatch (a tuple of tensors on the model's device), drawing any randomness it needs from
``generator``, the trainer's own CPU ``torch.Generator``. The same generator shuffles the minibatches,
so a run is reproducible on any device, and :meth:`Trainer.state_dict` (step, optimizer moments, EMA,
generator) continues it exactly after a restart.

The diffusion models train through :mod:`gensynth.diffusion.training` (its loss is DDPM's); the
spectral denoiser through its own Noise2Noise loss. :func:`train_epochs` runs the epochs of a job,
logs a progress line at intervals, appends each epoch's record to the job's epochs log
(``<log>.epochs.jsonl``, see :class:`EpochsLog`) and keeps a :class:`ResumeFile`, so a job stopped at its
walltime or preempted continues where it stopped: SIGTERM or SIGUSR1 (what SLURM sends at the time limit,
on preemption, or ahead of the limit with ``--signal``) ends training at the next step boundary, saves the
state of the last finished epoch and exits non-zero, and the job's next attempt resumes from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import GensynthError
from .io import atomic_open, json_line, load_checkpoint, save_checkpoint
from .progress import ProgressLog
from .provenance import LOG_ENV
from .seeding import torch_generator

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, ...]
LossFn = Callable[[torch.nn.Module, Batch, torch.Generator], torch.Tensor]
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequested(Exception):
    """Raised at the step boundary after a stop signal arrived (see :func:`stop_on_signals`)."""


class StopFlag:
    """The stop signal received while training, if any; checked at every step boundary."""

    received: int | None = None

    @classmethod
    def check(cls) -> None:
        if cls.received is not None:
            raise StopRequested(signal.Signals(cls.received).name)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGUSR1 set :class:`StopFlag` instead of ending the process at once.

    Outside a main thread (where Python cannot handle signals) the block changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame):
        StopFlag.received = signum

    StopFlag.received = None
    previous = {signum: signal.signal(signum, handle) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@dataclass
class TrainConfig:
    lr: float = 2e-4  # AdamW learning rate
    batch_size: int = 64
    ema_decay: float = 0.999  # diffusers' EMA warm-up ramps the decay up to this
    grad_clip: float = 1.0  # max gradient norm
    seed: int = 0  # shuffling and every random draw of the loss


@dataclass
class Trainer:
    """AdamW + EMA around ``loss``; ``eval_loss`` (default: ``loss``) scores held-out data."""

    model: torch.nn.Module
    loss: LossFn
    config: TrainConfig
    eval_loss: LossFn | None = None
    step: int = 0
    optimizer: torch.optim.Optimizer = field(init=False)
    ema: Any = field(init=False)  # diffusers' EMAModel
    generator: torch.Generator = field(init=False)

    def __post_init__(self):
        # Imported here: diffusers.training_utils loads most of diffusers and transformers (seconds), which
        # the jobs that only sample or measure never need.
        from diffusers.training_utils import EMAModel

        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.config.lr)
        self.ema = EMAModel(self.model.parameters(), decay=self.config.ema_decay, use_ema_warmup=True, power=3 / 4)
        self.generator = torch_generator(self.config.seed)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def batches(self, *tensors: torch.Tensor) -> Iterator[Batch]:
        """One shuffled pass over equally long tensors, in minibatches on the model's device."""
        order = torch.randperm(tensors[0].shape[0], generator=self.generator)
        for start in range(0, len(order), self.config.batch_size):
            index = order[start : start + self.config.batch_size]
            yield tuple(t[index].to(self.device) for t in tensors)

    def train_step(self, *batch: torch.Tensor) -> float:
        self.model.train()
        loss = self.loss(self.model, batch, self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.ema.step(self.model.parameters())
        self.step += 1
        StopFlag.check()
        return float(loss.detach())

    def train_epoch(self, *tensors: torch.Tensor) -> float:
        """One epoch; returns the mean training loss over its minibatches."""
        losses = [self.train_step(*batch) for batch in self.batches(*tensors)]
        return sum(losses) / len(losses)

    @torch.no_grad()
    def evaluate(self, *tensors: torch.Tensor, seed: int = 0) -> float:
        """Loss of the EMA weights on held-out data, with fixed randomness (comparable across epochs)."""
        generator = torch_generator(seed)
        loss_fn = self.eval_loss or self.loss
        total, count = 0.0, 0
        with self.ema_weights():
            self.model.eval()
            for start in range(0, tensors[0].shape[0], self.config.batch_size):
                batch = tuple(t[start : start + self.config.batch_size].to(self.device) for t in tensors)
                total += float(loss_fn(self.model, batch, generator)) * len(batch[0])
                count += len(batch[0])
        return total / count

    @contextlib.contextmanager
    def ema_weights(self) -> Iterator[None]:
        """Swap the EMA weights into the model for the duration of the block."""
        self.ema.store(self.model.parameters())
        self.ema.copy_to(self.model.parameters())
        try:
            yield
        finally:
            self.ema.restore(self.model.parameters())

    def ema_state_dict(self) -> dict[str, torch.Tensor]:
        with self.ema_weights():
            return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue a saved run; the configured learning rate and EMA decay win over the saved ones."""
        self.step = int(state["step"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr
        self.ema.load_state_dict(state["ema"])
        self.ema.to(self.device)  # its shadow weights load on the CPU
        self.ema.decay = self.config.ema_decay
        self.generator.set_state(state["generator"])


def run_fingerprint(**parts: Any) -> str:
    """SHA-256 of what a resumed run must share with the interrupted one (data digests, settings)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class ResumeFile:
    """A training job's resumable state, saved atomically at most every ``every_s`` seconds and at the end.

    It lives beside the job's outputs but is not one of them, so Snakemake keeps it when the job is
    killed (a walltime limit): the rerun continues from the last save, to the same final weights as
    an uninterrupted run (training draws all its randomness from the trainer's own generator). The job
    removes it once its artifact is written (:func:`discard_resume_state`).
    """

    path: Path
    fingerprint: str  # see run_fingerprint
    every_s: float = 600.0
    last_save: float = field(default_factory=time.monotonic)

    def load(self, epochs: int | None = None) -> dict[str, Any] | None:
        """The saved state if it belongs to this run (and has at most ``epochs`` epochs), else None (and why, in the log)."""
        if not self.path.exists():
            return None
        try:
            state = load_checkpoint(self.path)
        except GensynthError as exc:
            log.warning("not resuming: %s", exc)
            return None
        if state.get("fingerprint") != self.fingerprint:
            log.info("not resuming from %s: it was trained on other data or settings", self.path)
            return None
        if epochs is not None and len(state.get("history", ())) > epochs:
            log.info("not resuming from %s: it has %d epochs, more than the %d asked for", self.path, len(state["history"]), epochs)
            return None
        return state

    def due(self) -> bool:
        return time.monotonic() - self.last_save >= self.every_s

    def save(self, state: dict[str, Any]) -> None:
        save_checkpoint(self.path, {**state, "fingerprint": self.fingerprint})
        self.last_save = time.monotonic()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    @classmethod
    def beside(cls, output: str | Path, every_s: float = 600.0, **fingerprint: Any) -> ResumeFile:
        """The resume file of the job that writes ``output`` (:func:`resume_path`)."""
        return cls(resume_path(output), run_fingerprint(**fingerprint), every_s)


def resume_path(output: str | Path, part: str = "") -> Path:
    """Where the job that writes ``output`` keeps its resume state: ``.<name>.resume`` in the same folder
    (``.<name>.<part>.resume`` for one of several runs that make it, such as one seed's)."""
    output = Path(output)
    return output.parent / f".{output.name}{'.' + part if part else ''}.resume"


class BestKeepingResumeFile(ResumeFile):
    """The resume file plus the best epoch so far (its weights, loss, epoch), so that a resumed run still knows them."""

    best: dict[str, Any] | None = None

    def load(self, epochs: int | None = None) -> dict[str, Any] | None:
        state = super().load(epochs)
        self.best = None if state is None else state.get("best")
        return state

    def save(self, state: dict[str, Any]) -> None:
        super().save({**state, "best": self.best})


def discard_resume_state(*paths: str | Path) -> None:
    """Remove a finished job's resume state, once its artifact is written: a later run of the job (its code
    changed, say) must train afresh, not finish from the state of the run it replaces."""
    for path in paths:
        Path(path).unlink(missing_ok=True)


class EpochsLog:
    """Each epoch's record the moment it ends, one JSON line flushed to ``<log>.epochs.jsonl``: how a user
    sees that a long job is learning.

    The file lies beside the job's log, ``$GENSYNTH_LOG`` (the rules set it); a script run by hand without
    it writes none. A line is ``{"run": ..., **record}``: ``run`` names which of the job's trainings (a
    seed's, a generation's), the record is the history's (epoch, losses, ``seconds``, ``attempt``). When a
    run starts or resumes, the file keeps the other runs' lines and this run's saved records, so once the
    job ends a run's lines, less ``run``, are its final history.
    """

    def __init__(self, path: str | Path, run: str):
        self.path, self.run = Path(path), run

    @classmethod
    def of_job(cls, run: str) -> EpochsLog | None:
        job_log = os.environ.get(LOG_ENV)
        return cls(epochs_log_path(job_log), run) if job_log else None

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def start(self, records: list[dict[str, Any]]) -> None:
        kept = [r for r in self.records() if r.get("run") != self.run] + [{"run": self.run, **r} for r in records]
        with atomic_open(self.path, "w", encoding="utf-8") as handle:
            handle.writelines(json_line(r) + "\n" for r in kept)

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json_line({"run": self.run, **record}) + "\n")


def epochs_log_path(job_log: str | Path) -> Path:
    """``logs/x/job.log`` -> ``logs/x/job.epochs.jsonl``."""
    job_log = Path(job_log)
    return job_log.with_name(f"{job_log.stem}.epochs.jsonl")


def cpu_copy(state: Any) -> Any:
    """A copy of a (nested) state dict with its tensors cloned to the CPU."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: cpu_copy(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(cpu_copy(v) for v in state)
    return state


def train_epochs(
    trainer: Trainer,
    epochs: int,
    epoch: Callable[[int], dict[str, Any]],
    resume: ResumeFile | None = None,
    stop: Callable[[list[dict[str, Any]]], bool] | None = None,
    desc: str = "training",
    log_every_s: float = 30.0,
) -> list[dict[str, Any]]:
    """Epochs 1..``epochs`` (or on from a saved state), ``epoch(n)`` returning the epoch's record (its losses).

    After each epoch: a progress line at most every ``log_every_s`` seconds (in a job's log too, not
    only on a terminal), the record in the job's :class:`EpochsLog`, and the resume file when due.
    ``stop(history)`` ends the run early (early stopping). SIGTERM or SIGUSR1 ends it at the next step
    boundary: the state after the last finished epoch goes to the resume file (within seconds; the epoch
    in progress is lost) and a GensynthError says the job will resume. Returns the history, one record per
    epoch, ``{"epoch": n, **record, "seconds": its wall time, "attempt": the job's attempt that ran it}``
    (1, then one more per resume).
    """
    records: list[dict[str, Any]] = []
    attempt = 1
    state = resume.load(epochs) if resume else None
    if state is not None:
        trainer.model.load_state_dict(state["model"])
        trainer.load_state_dict(state["trainer"])
        records = list(state["history"])
        attempt = int(state.get("attempt", 1)) + 1
        log.info("%s: resuming after epoch %d from %s", desc, len(records), resume.path)
    epochs_log = EpochsLog.of_job(desc)
    if epochs_log is not None:
        epochs_log.start(records)
    progress_log = ProgressLog(desc, total=epochs, unit="epoch", every_s=log_every_s)

    def snapshot() -> dict[str, Any]:
        trained = {"model": trainer.model.state_dict(), "trainer": trainer.state_dict()}
        return {**trained, "history": list(records), "attempt": attempt}

    finished = cpu_copy(snapshot()) if resume is not None else None
    with stop_on_signals():
        try:
            for number in range(len(records) + 1, epochs + 1):
                if stop is not None and stop(records):
                    log.info("%s: stopped after epoch %d", desc, len(records))
                    break
                started = time.monotonic()
                record = {"epoch": number, **epoch(number)}
                records.append({**record, "seconds": round(time.monotonic() - started, 3), "attempt": attempt})
                if epochs_log is not None:
                    epochs_log.append(records[-1])
                progress_log.update(number, step=trainer.step, **{k: v for k, v in records[-1].items() if k not in ("epoch", "attempt")})
                if resume is not None:
                    finished = cpu_copy(snapshot())  # what a stop signal during the next epoch saves
                    if resume.due() or number == epochs:
                        resume.save(finished)
                StopFlag.check()
        except StopRequested as stopped:
            StopFlag.received = None
            if resume is None:
                raise GensynthError(f"{desc}: stopped by {stopped} during epoch {len(records) + 1}; this training cannot resume") from None
            resume.save(finished)
            raise GensynthError(
                f"{desc}: stopped by {stopped} after epoch {len(finished['history'])} of {epochs}; "
                f"its state is saved to {resume.path}, and the job's next attempt resumes from there"
            ) from None
    return records
