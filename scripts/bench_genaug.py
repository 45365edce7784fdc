"""What generative augmentation costs: synthetic images/s per inference-step count, peak memory of the
model cache, and its hit rate under the training's access pattern.

    python scripts/bench_genaug.py --device cpu
    python scripts/bench_genaug.py --device cuda --batch 30 --repeats 3 --json results/genaug/bench_genaug.json

Random-weight pipelines are saved to a temporary folder first (nothing is downloaded):
  ddim  the trained-size model of one (modality, phase): a DDIMPipeline of a UNet2DModel, 32x32,
        block_out_channels 32 64 64, one layer per block (the --ddim-* flags change it)
  sd    the tiny Stable Diffusion pipeline of gensynth.genaug.tiny_sd (16x16; guidance 7.5, so two
        UNet passes a step)
1. throughput: images/s of manager.generate(n=--batch) at each of --steps (the group's sweep 10, 20, 50),
   the best of --repeats calls after a warm-up call that loads the pipeline;
2. memory: a fresh child process per case cycles --cycles times through the nine ddim folders, making
   --memory-batch images at one step from each, with max_models 3 and with all nine held; it reports
   its peak RSS (VmHWM, restarted once torch and diffusers are imported) less its RSS then, and the
   most parameter bytes the cache held at once (on CUDA also torch.cuda.max_memory_allocated);
3. hit rate: --batches training batches of --batch-size samples whose phases are drawn from --phase-mix,
   planned by the training's own mixing rule (gensynth.genaug.mixing.plan_batch: with probability prob a
   batch gets k = floor(r B + u) synthetic samples, r uniform in mix_ratio_range, u uniform in [0, 1));
   one request per planned modality and distinct phase. Cases: the default (depth_rgb only, three
   folders), and all four modalities (nine folders) at max_models 3 and 9.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from gensynth.cli import add_device_arguments, exit_main
from gensynth.device import use_device
from gensynth.genaug.augmentation import MODALITIES, MODEL_FOLDERS, PHASES, augmentation_configs, model_folder
from gensynth.genaug.manager import GenerativeAugmentationManager
from gensynth.genaug.mixing import plan_batch
from gensynth.genaug.tiny_sd import build_ddim_pipeline, build_tiny_sd_pipeline
from gensynth.io import save_json
from gensynth.provenance import Provenance
from gensynth.seeding import numpy_generator

MIB = 2**20
# The modality that draws from each folder: rgb from depth_rgb, each map from itself.
FOLDER_SOURCE = {model_folder(m, p): (m, p) for m in ("depth_rgb", "thermal_map", "depth_map") for p in PHASES}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_arguments(parser)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50], help="inference-step counts (the group's sweep)")
    parser.add_argument("--batch", type=int, default=8, help="images per generate() call (the group's batch_limit: 30)")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per step count (the best counts)")
    parser.add_argument("--ddim-size", type=int, default=32, help="image side of the ddim pipeline")
    parser.add_argument("--ddim-channels", type=int, nargs="+", default=[32, 64, 64], help="its UNet's block_out_channels")
    parser.add_argument("--ddim-layers", type=int, default=1, help="its UNet's layers_per_block")
    parser.add_argument("--sd-size", type=int, default=16, help="image side of the tiny Stable Diffusion pipeline")
    parser.add_argument("--cycles", type=int, default=2, help="passes through the nine folders in the memory cases")
    parser.add_argument("--memory-batch", type=int, default=4, help="images per folder visit in the memory cases")
    parser.add_argument("--batches", type=int, default=200, help="training batches of the hit-rate cases")
    parser.add_argument("--batch-size", type=int, default=32, help="samples per training batch")
    parser.add_argument(
        "--phase-mix", type=float, nargs=3, default=[1 / 3, 1 / 3, 1 / 3], metavar=("I", "P", "R"), help="phase proportions of the training set"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    return parser


def enabled_configs(modalities, **settings):
    """The group's production configs, switched on for ``modalities``, with ``settings`` changed."""
    section = {"modalities": {m: {"enabled": m in modalities, **settings} for m in MODALITIES}}
    return augmentation_configs(section, use_generative_augmentation=True)


def build_folders(base: Path, kind: str, args: argparse.Namespace, folders=MODEL_FOLDERS) -> Path:
    for index, folder in enumerate(folders):
        if kind == "sd":
            build_tiny_sd_pipeline(base / folder, image_size=args.sd_size, seed=index)
        else:
            channels = 3 if folder.startswith("rgb") else 1
            build_ddim_pipeline(base / folder, channels, args.ddim_size, tuple(args.ddim_channels), args.ddim_layers, seed=index)
    return base


def throughput(base: Path, device: torch.device, args: argparse.Namespace) -> list[dict]:
    """Images/s of depth_rgb, phase I, per step count."""
    rows = []
    for steps in args.steps:
        manager = GenerativeAugmentationManager(base, enabled_configs(["depth_rgb"], inference_steps=steps, batch_limit=args.batch), device)
        manager.generate("depth_rgb", "I", 1, seed=0)  # loads the pipeline; first-call set-up
        best = float("inf")
        for repeat in range(args.repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            manager.generate("depth_rgb", "I", args.batch, seed=repeat)
            best = min(best, time.perf_counter() - start)  # generate returns arrays on the CPU: the GPU is done
        rows.append({"steps": steps, "batch": args.batch, "seconds": best, "images_per_s": args.batch / best})
        manager.close()
    return rows


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS count (VmHWM) from the current RSS; False where /proc cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float:
    """This process's peak RSS: VmHWM on Linux, else ru_maxrss (bytes on macOS)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def memory_case(base: str, max_models: int, cycles: int, batch: int, threads: int, device: str) -> dict:
    """In a fresh process: cycle through the nine folders; peak RSS and parameter bytes held."""
    torch.set_num_threads(threads)
    # The peak counts from here, torch and diffusers imported (where /proc cannot restart it, the imports' peak stays in).
    reset_peak_rss()
    baseline = peak_rss_mib()
    configs = enabled_configs(["depth_rgb", "thermal_map", "depth_map"], inference_steps=1, batch_limit=batch, max_models=max_models)
    manager = GenerativeAugmentationManager(base, configs, device)
    most_bytes = 0
    for _ in range(cycles):
        for folder in MODEL_FOLDERS:
            manager.generate(*FOLDER_SOURCE[folder], batch, seed=0)
            most_bytes = max(most_bytes, manager.loaded_bytes())
    info = manager.cache_info()
    peak = peak_rss_mib()
    row = {
        "max_models": max_models,
        "rss_before_mib": baseline,
        "peak_rss_mib": peak,
        "peak_rss_growth_mib": peak - baseline,
        "peak_parameter_mib": most_bytes / MIB,
        "loads": info.loads,
        "evictions": info.evictions,
    }
    if manager.device.type == "cuda":
        row["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / MIB
    return row


def memory(base: Path, device: torch.device, args: argparse.Namespace) -> list[dict]:
    rows = []
    for max_models in (3, len(MODEL_FOLDERS)):
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows.append(pool.submit(memory_case, str(base), max_models, args.cycles, args.memory_batch, args.threads, str(device)).result())
    return rows


def training_requests(configs, args: argparse.Namespace, rng: np.random.Generator) -> list[tuple[str, str]]:
    """The (modality, phase) requests of --batches training batches (see the module docstring, 3.)."""
    mix = np.asarray(args.phase_mix) / np.sum(args.phase_mix)
    requests = []
    for _ in range(args.batches):
        batch_phases = rng.choice(len(PHASES), size=args.batch_size, p=mix)
        for replacement in plan_batch(batch_phases, configs, rng):
            requests += [(replacement.modality, PHASES[p]) for p in dict.fromkeys(replacement.phases.tolist())]  # distinct phases
    return requests


def hit_rates(base: Path, device: torch.device, args: argparse.Namespace) -> list[dict]:
    cases = [("depth_rgb (default)", ["depth_rgb"], 3), ("all four modalities", MODALITIES, 3), ("all four modalities", MODALITIES, 9)]
    rows = []
    for name, modalities, max_models in cases:
        configs = enabled_configs(modalities, max_models=max_models)
        manager = GenerativeAugmentationManager(base, configs, device)
        requests = training_requests(configs, args, numpy_generator(args.seed))
        for modality, phase in requests:
            manager.get_pipeline(modality, phase)  # the cache as generate() uses it, without sampling
        rows.append({"case": name, "max_models": max_models, "requests": len(requests), **manager.cache_info().as_dict()})
        manager.close()
    return rows


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    device = use_device(args)
    provenance = Provenance(vars(args), str(device))
    with tempfile.TemporaryDirectory(prefix="bench_genaug_") as tmp:
        print(
            f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), threads {args.threads}, "
            f"ddim {args.ddim_size}x{args.ddim_size} {args.ddim_channels} x{args.ddim_layers}, sd {args.sd_size}x{args.sd_size}"
        )
        ddim = build_folders(Path(tmp) / "ddim", "ddim", args)
        sd = build_folders(Path(tmp) / "sd", "sd", args, folders=[f"rgb_{p}" for p in PHASES])
        small = argparse.Namespace(**{**vars(args), "ddim_size": 16, "ddim_channels": [16, 32]})  # hit rates count requests: fast loads do
        tiny = build_folders(Path(tmp) / "tiny", "ddim", small)

        speed = {kind: throughput(base, device, args) for kind, base in (("ddim", ddim), ("sd", sd))}
        print(f"\n1. throughput, {args.batch} images a call\n{'pipeline':>8} {'steps':>5} {'images/s':>9} {'s/call':>7}")
        for kind, rows in speed.items():
            for row in rows:
                print(f"{kind:>8} {row['steps']:5d} {row['images_per_s']:9.2f} {row['seconds']:7.3f}")

        mem = memory(ddim, device, args)
        print(f"\n2. memory, {args.cycles} passes through the nine ddim folders, {args.memory_batch} images a visit")
        print(f"{'max_models':>10} {'peak RSS MiB':>12} {'RSS growth MiB':>14} {'parameters MiB':>14} {'CUDA peak MiB':>13} {'loads':>5} {'evictions':>9}")
        for row in mem:
            cuda = f"{row['cuda_max_allocated_mib']:13.1f}" if "cuda_max_allocated_mib" in row else f"{'-':>13}"
            print(
                f"{row['max_models']:10d} {row['peak_rss_mib']:12.1f} {row['peak_rss_growth_mib']:14.1f} "
                f"{row['peak_parameter_mib']:14.1f} {cuda} {row['loads']:5d} {row['evictions']:9d}"
            )

        hits = hit_rates(tiny, device, args)
        print(f"\n3. hit rate, {args.batches} batches of {args.batch_size}, phase mix I/P/R {' '.join(f'{x:.3g}' for x in args.phase_mix)}")
        print(f"{'case':>20} {'max_models':>10} {'requests':>8} {'hits':>5} {'loads':>5} {'evictions':>9} {'hit rate':>8}")
        for row in hits:
            print(
                f"{row['case']:>20} {row['max_models']:10d} {row['requests']:8d} {row['hits']:5d} {row['loads']:5d} "
                f"{row['evictions']:9d} {row['hit_rate']:8.3f}"
            )
    if args.json:
        save_json(args.json, {"throughput": speed, "memory": mem, "hit_rate": hits, "provenance": provenance.record()})
    return 0


if __name__ == "__main__":
    exit_main(main)
