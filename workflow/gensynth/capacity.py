"""Capacity plans: how long each expensive job of a config runs and how much memory it holds, measured before
the first sbatch.

Each module names its expensive steps (:class:`Probe`): the rule, how many jobs the config makes of it, how
many iterations of the step one job runs (training steps, sampling steps at the sampling batch, images), and
a builder of that step at the config's full tensor shapes, on stand-in inputs (random tensors of the data's
shapes: the full data need not be here). :func:`measure` times a few iterations after a warm-up in a fresh
process (its peak RSS is the step's own; on CUDA also the peak allocated; a CPU step of LONG_STEP_S or more is
timed once), and :func:`plan_row` projects one
job: ``iterations x seconds per iteration + STARTUP_S``, memory ``(peak RSS + the arrays the job holds) x
HEADROOM``, against the config's declared resources and the SLURM profile's partitions.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .io import load_yaml

STARTUP_S = 60.0  # per job: imports, reading its inputs, writing its outputs (not probed)
HEADROOM = 1.25  # on the projected memory: allocator slack, the batches the probe did not see
LONG_STEP_S = 5.0  # a CPU step at least this long is timed once, its warm-up run being the measurement
COLUMNS = (
    "rule",
    "jobs",
    "projected_runtime_min",
    "declared_runtime_min",
    "projected_mem_mb",
    "declared_mem_mb",
    "partition",
    "attempts_needed",
    "gpu_hours",
    "declared_attempts",
    "iterations_per_job",
    "seconds_per_iteration",
    "peak_rss_mb",
    "cuda_peak_mb",
    "device",
    "step",
    "problem",
)


@dataclass(frozen=True)
class Step:
    """One kind of iteration a job runs, and how many."""

    build: str  # "module:function": function(device=..., **kwargs) -> run(n) that runs n iterations
    kwargs: dict[str, Any]  # the step's shapes and settings (plain values: they cross to the measuring process)
    iterations: int  # in one job
    what: str  # one iteration, in words


@dataclass(frozen=True)
class Probe:
    """A rule's jobs: how many, the steps each runs, the arrays each holds."""

    rule: str  # the config's resources key (the rule)
    jobs: int  # jobs of the rule in the config's DAG
    steps: tuple[Step, ...]
    data_mb: float = 0.0  # arrays the job holds beside what one iteration allocates (its dataset)
    gpu: bool = True  # the rule declares gpu=1
    variant: str = ""  # which of the rule's jobs, where they differ (a scenario)

    @property
    def name(self) -> str:
        return f"{self.rule} ({self.variant})" if self.variant else self.rule


@dataclass
class Measurement:
    seconds_per_iteration: float
    peak_rss_mb: float
    cuda_peak_mb: float | None
    device: str
    failure: str = ""  # why the step could not be measured (the memory it needs beyond the plan's limit)


def resolve(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _measure_here(build: str, kwargs: dict[str, Any], iterations: int, device: str, threads: int, max_mem_mb: float) -> dict[str, Any]:
    import resource

    import torch

    from .device import limit_threads, pick_device

    limit_threads(threads)
    torch.manual_seed(0)
    target = pick_device(device)
    if target.type == "cpu":  # a step larger than the machine fails here instead of swapping it to a halt
        resource.setrlimit(resource.RLIMIT_AS, (int(max_mem_mb * 2**20), resource.RLIM_INFINITY))
    try:
        run = resolve(build)(device=target, **kwargs)
        started = time.perf_counter()
        run(1)  # warm-up: allocations, kernel selection
    except (MemoryError, RuntimeError) as exc:
        if "memory" not in str(exc).lower():
            raise
        return {
            "seconds_per_iteration": math.nan,
            "peak_rss_mb": max_mem_mb,
            "cuda_peak_mb": None,
            "device": str(target),
            "failure": f"more than {max_mem_mb:.0f} MB",
        }
    first = time.perf_counter() - started
    if target.type == "cuda":
        torch.cuda.synchronize(target)
        torch.cuda.reset_peak_memory_stats(target)
    if target.type != "cuda" and first >= LONG_STEP_S:
        seconds = first  # a step this long on a CPU is its own measurement: its first run's overheads are small beside it
    else:
        started = time.perf_counter()
        run(iterations)
        if target.type == "cuda":
            torch.cuda.synchronize(target)
        seconds = (time.perf_counter() - started) / iterations
    cuda_peak = torch.cuda.max_memory_allocated(target) / 2**20 if target.type == "cuda" else None
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    return {"seconds_per_iteration": seconds, "peak_rss_mb": peak_rss, "cuda_peak_mb": cuda_peak, "device": str(target)}


def measure(step: Step, iterations: int, device: str = "auto", threads: int = 1, max_mem_mb: float | None = None) -> Measurement:
    """``iterations`` timed iterations of ``step`` after one warm-up, in a fresh process whose address space on a
    CPU is held to ``max_mem_mb`` (default: three quarters of this machine's memory)."""
    if max_mem_mb is None:
        max_mem_mb = 0.75 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply(_measure_here, (step.build, step.kwargs, iterations, device, threads, max_mem_mb))
    return Measurement(**result)


@dataclass
class Partition:
    name: str
    max_runtime: float = math.inf  # minutes
    max_mem_mb: float = math.inf
    max_gpu: int = 0


def read_partitions(path: str | Path) -> list[Partition]:
    """The SLURM profile's partition file (``partitions: {name: {max_runtime, max_mem_mb, max_gpu, ...}}``)."""
    entries = (load_yaml(path, "partition file") or {}).get("partitions") or {}
    known = {f.name for f in dataclasses.fields(Partition)} - {"name"}
    return [Partition(name, **{k: v for k, v in (limits or {}).items() if k in known}) for name, limits in entries.items()]


def best_partition(partitions: list[Partition], gpu: bool, mem_mb: float) -> Partition | None:
    """The partition with the longest runtime among those that hold the job's GPUs and memory (a long job
    is split into attempts of at most its max_runtime)."""
    holding = [p for p in partitions if (p.max_gpu >= 1 if gpu else True) and p.max_mem_mb >= mem_mb]
    if not gpu:
        holding = [p for p in holding if p.max_gpu == 0] or holding  # CPU jobs stay off GPU partitions where they can
    return max(holding, key=lambda p: p.max_runtime, default=None)


@dataclass
class Declared:
    runtime: int  # minutes per attempt
    mem_mb: int
    attempts: int = 1


def plan_row(probe: Probe, measured: list[Measurement], declared: Declared, partitions: list[Partition]) -> dict[str, Any]:
    """One job's projection (its steps' iterations in turn, the largest peak) and what stands in its way
    (``problem``, empty when the declaration holds it)."""
    failures = [f"{step.what} needs {m.failure} on {m.device}" for step, m in zip(probe.steps, measured) if m.failure]
    if failures:
        return unmeasured_row(probe, declared, measured[0].device, failures)
    seconds = sum(step.iterations * m.seconds_per_iteration for step, m in zip(probe.steps, measured)) + STARTUP_S
    runtime = math.ceil(seconds / 60)
    peak_rss = max(m.peak_rss_mb for m in measured)
    cuda_peaks = [m.cuda_peak_mb for m in measured if m.cuda_peak_mb is not None]
    mem = math.ceil((peak_rss + probe.data_mb) * HEADROOM)
    partition = best_partition(partitions, probe.gpu, max(mem, declared.mem_mb))
    per_attempt = min(declared.runtime, partition.max_runtime) if partition else declared.runtime
    attempts = math.ceil(runtime / per_attempt)
    problems = []
    if partition is None:
        problems.append("no partition holds its GPUs and memory")
    elif declared.runtime > partition.max_runtime:
        problems.append(f"runtime {declared.runtime} > partition {partition.name}'s max_runtime {partition.max_runtime:g}")
    if attempts > declared.attempts:
        problems.append(f"needs {attempts} attempts of {per_attempt} min, declares {declared.attempts}")
    if mem > declared.mem_mb:
        problems.append(f"needs {mem} MB, declares {declared.mem_mb}")
    return {
        "rule": probe.name,
        "jobs": probe.jobs,
        "projected_runtime_min": runtime,
        "declared_runtime_min": declared.runtime,
        "projected_mem_mb": mem,
        "declared_mem_mb": declared.mem_mb,
        "partition": partition.name if partition else "",
        "attempts_needed": attempts,
        "gpu_hours": round(probe.jobs * seconds / 3600, 2) if probe.gpu else 0.0,
        "declared_attempts": declared.attempts,
        "iterations_per_job": " + ".join(str(step.iterations) for step in probe.steps),
        "seconds_per_iteration": " + ".join(f"{m.seconds_per_iteration:.4g}" for m in measured),
        "peak_rss_mb": round(peak_rss),
        "cuda_peak_mb": round(max(cuda_peaks)) if cuda_peaks else "",
        "device": measured[0].device,
        "step": " + ".join(step.what for step in probe.steps),
        "problem": "; ".join(problems),
    }


def unmeasured_row(probe: Probe, declared: Declared, device: str, failures: list[str]) -> dict[str, Any]:
    """A rule whose step could not run here: no projection, and why."""
    row = dict.fromkeys(COLUMNS, "")
    row.update(
        rule=probe.name,
        jobs=probe.jobs,
        declared_runtime_min=declared.runtime,
        declared_mem_mb=declared.mem_mb,
        declared_attempts=declared.attempts,
        iterations_per_job=" + ".join(str(step.iterations) for step in probe.steps),
        device=device,
        step=" + ".join(step.what for step in probe.steps),
        problem="not measured: " + "; ".join(failures) + " (re-plan where it fits: a GPU node)",
    )
    return row


def array_mb(*shape: int, itemsize: int = 4) -> float:
    """Megabytes of an array of ``shape`` (float32 unless ``itemsize`` says otherwise)."""
    return math.prod(shape) * itemsize / 2**20


@dataclass
class DiffusionStep:
    """Shapes of a diffusion model's training or sampling step (kwargs of :func:`diffusion_train_step` and
    :func:`diffusion_sample_step`)."""

    model: dict[str, Any]  # UNetConfig.to_dict()
    batch: int
    num_train_timesteps: int = 1000
    labels: bool = True  # class-conditional

    def kwargs(self, **more: Any) -> dict[str, Any]:
        return {"model": self.model, "batch": self.batch, "num_train_timesteps": self.num_train_timesteps, "labels": self.labels, **more}


def _model_and_inputs(model: dict[str, Any], batch: int, labels: bool, device):
    import torch

    from .diffusion.models import build_model, model_config_from_dict

    cfg = model_config_from_dict(model)
    net = build_model(cfg).to(device)
    x = torch.randn(batch, cfg.in_channels, cfg.sample_size, cfg.sample_size)
    y = torch.randint(0, cfg.num_classes, (batch,)) if labels else None
    return net, x, y


def diffusion_train_step(device, model: dict[str, Any], batch: int, num_train_timesteps: int, labels: bool) -> Callable[[int], None]:
    """One AdamW + EMA step of the shared diffusion trainer on a batch of ``batch`` images."""
    from .diffusion import DiffusionTrainConfig, diffusion_trainer, make_train_scheduler

    net, x, y = _model_and_inputs(model, batch, labels, device)
    trainer = diffusion_trainer(net, make_train_scheduler(num_train_timesteps), DiffusionTrainConfig(batch_size=batch))
    tensors = (x.to(device), y.to(device)) if labels else (x.to(device),)

    def run(n: int) -> None:
        for _ in range(n):
            trainer.train_step(*tensors)

    return run


def diffusion_sample_step(
    device, model: dict[str, Any], batch: int, num_train_timesteps: int, labels: bool, sampler: str = "ddim", guidance_scale: float = 1.0
) -> Callable[[int], None]:
    """One denoising step of gensynth's sampler on a batch of ``batch`` images (both passes with guidance)."""
    import torch

    from .diffusion import SamplerSettings, make_sampler, make_train_scheduler, prepare_for_inference, sample, scheduler_config
    from .seeding import torch_generator

    net, _, y = _model_and_inputs(model, batch, labels, device)
    net = prepare_for_inference(net)
    train_config = scheduler_config(make_train_scheduler(num_train_timesteps))
    generators = [torch_generator(i) for i in range(batch)]

    def run(n: int) -> None:
        settings = SamplerSettings(num_inference_steps=n, batch_size=batch, sampler=sampler, guidance_scale=guidance_scale)
        with torch.no_grad():
            sample(net, make_sampler(sampler, train_config), y, generators, settings)

    return run
