"""Samples/s of the replica sampler (one generator per sample) against two references.

On the same UNet, steps and batch:
  per-sample   gensynth.diffusion.sample: each sample's noise from its own generator (what replicas use)
  batch-1      the same sampler one sample at a time (the naive way to get per-sample seeds)
  one-gen      diffusers' usual batched loop: one generator draws the whole batch's noise
Target: per-sample costs at most 5% more time than one-gen at batch 16 and 64.

    python scripts/bench_replicas.py --device cpu --size 32 --steps 20 --batch-sizes 16 64
    python scripts/bench_replicas.py --device cuda --size 128 --block-out-channels 64 128 256 256 --attention --steps 50
"""

from __future__ import annotations

import argparse
import time

import torch
from diffusers import DDIMScheduler
from diffusers.utils.torch_utils import randn_tensor

from gensynth.cli import exit_main
from gensynth.device import autocast, pick_device
from gensynth.diffusion import SamplerSettings, UNetConfig, build_model, make_sampler, make_train_scheduler, prepare_for_inference, sample, scheduler_config
from gensynth.io import save_json
from gensynth.seeding import torch_generator


@torch.no_grad()
def sample_one_generator(unet, scheduler, labels, generator, num_inference_steps, eta=0.0) -> torch.Tensor:
    """diffusers' usual pipeline loop: the whole batch's noise from one generator (no guidance)."""
    cfg = unet.config
    shape = (labels.shape[0], cfg.in_channels, cfg.sample_size, cfg.sample_size)
    x = randn_tensor(shape, generator=generator, device=unet.device, dtype=torch.float32) * scheduler.init_noise_sigma
    scheduler.set_timesteps(num_inference_steps, device=unet.device)
    labels = labels.to(unet.device)
    step_kwargs = {"eta": eta} if isinstance(scheduler, DDIMScheduler) else {}
    for t in scheduler.timesteps:
        with autocast(unet.device):
            eps = unet(scheduler.scale_model_input(x, t), t, class_labels=labels).sample.float()
        x = scheduler.step(eps, t, x, generator=generator, **step_kwargs).prev_sample
    return x


def best_times(fns: dict, device: torch.device, repeats: int) -> dict[str, float]:
    """Best wall time (seconds) of each function over ``repeats`` rounds, after one warm-up each.

    The functions take turns within a round, so a change in the machine's load hits them alike.
    """

    def run(fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            best[name] = min(best[name], run(fn))
    return best


def sampling_calls(unet, scheduler, batch: int, num_classes: int, args: argparse.Namespace) -> dict:
    """The ways of sampling ``batch`` images that the benchmark times: a generator per sample (the pipeline's),
    one generator for the batch, and (unless --skip-batch1) one image at a time."""
    labels = torch.arange(batch) % num_classes  # (B,)
    settings = SamplerSettings(args.steps, batch, eta=args.eta)

    def per_sample():
        sample(unet, scheduler, labels, [torch_generator(s) for s in range(batch)], settings)

    def one_generator():
        sample_one_generator(unet, scheduler, labels, torch_generator(0), args.steps, eta=args.eta)

    def batch_one():
        for i in range(batch):
            sample(unet, scheduler, labels[i : i + 1], [torch_generator(i)], settings)

    return {"per_sample": per_sample, "one_generator": one_generator, **({} if args.skip_batch1 else {"batch1": batch_one})}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=32, help="image side (the group's full scale: 128)")
    parser.add_argument("--block-out-channels", type=int, nargs="+", default=[16, 32, 32], help="UNet block_out_channels")
    parser.add_argument("--attention", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--z-bins", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM eta (> 0 adds per-step noise from the generators)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-batch1", action="store_true", help="leave out the (slow) batch-1 loop")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    cfg = UNetConfig(args.size, 2, 2, 2 * args.z_bins, tuple(args.block_out_channels), attention=args.attention)
    torch.manual_seed(0)
    unet = prepare_for_inference(build_model(cfg).to(device))
    scheduler = make_sampler("ddim", scheduler_config(make_train_scheduler(1000, prediction_type="v_prediction")))
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), size {args.size}, "
        f"channels {args.block_out_channels}, attention {args.attention}, {args.steps} DDIM steps, eta {args.eta}, threads {args.threads}"
    )
    print(f"{'batch':>5} {'per-sample/s':>13} {'one-gen/s':>10} {'batch-1/s':>10} {'overhead vs one-gen':>20}")
    rows = []
    for batch in args.batch_sizes:
        times = best_times(sampling_calls(unet, scheduler, batch, cfg.num_classes, args), device, args.repeats)
        t_per_sample, t_one_gen, t_batch1 = times["per_sample"], times["one_generator"], times.get("batch1")
        row = {
            "batch": batch,
            "per_sample_samples_per_s": batch / t_per_sample,
            "one_generator_samples_per_s": batch / t_one_gen,
            "batch1_samples_per_s": None if t_batch1 is None else batch / t_batch1,
            "overhead_vs_one_generator_pct": 100 * (t_per_sample / t_one_gen - 1),
        }
        rows.append(row)
        batch1 = "-" if t_batch1 is None else f"{row['batch1_samples_per_s']:10.2f}"
        print(
            f"{batch:5d} {row['per_sample_samples_per_s']:13.2f} {row['one_generator_samples_per_s']:10.2f} {batch1:>10} "
            f"{row['overhead_vs_one_generator_pct']:19.1f}%"
        )
    if args.json:
        save_json(args.json, {"args": vars(args), "device": str(device), "rows": rows})
    return 0


if __name__ == "__main__":
    exit_main(main)
