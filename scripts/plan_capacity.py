"""A capacity plan before the first sbatch: each expensive step of a config, timed at its full tensor shapes.

For every module the config files set (or --modules), each expensive rule's step runs for a few iterations
on stand-in inputs of the data's shapes (the full data need not be here), in a fresh process: seconds per
iteration and peak memory (RSS; on CUDA also the peak allocated). The plan projects each job (iterations x
seconds + a fixed start-up) against the config's declared resources and the SLURM profile's partitions, prints
one row per rule and writes them as CSV. A row's ``problem`` names what does not hold the job (runtime per
attempt, attempts, memory, partition); the exit status is 1 when any row has one.

    python scripts/plan_capacity.py --configfile config/full/replicas.yaml --device auto

The config files merge over config/config.yaml, as Snakemake merges --configfile; the projections are of the
device the plan ran on (its column): re-plan on a GPU node with --device cuda before trusting GPU rows.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from gensynth.cli import DEVICE_CHOICES, exit_main
from gensynth.errors import GensynthError

ROOT = Path(__file__).resolve().parents[1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", nargs="+", required=True, type=Path, help="config files merged over config/config.yaml, in order")
    parser.add_argument("--modules", nargs="+", help="modules to plan (default: those the config files set)")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="where the steps run (default: auto)")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per step, after one warm-up (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per step, as the rules declare (default: 1)")
    parser.add_argument("--max-mem-mb", type=float, help="on a CPU, a step needing more memory is reported, not run (default: 3/4 of this machine's)")
    parser.add_argument("--partitions", type=Path, default=ROOT / "profiles/slurm/partitions.yaml", help="the SLURM profile's partition file")
    parser.add_argument("--out", type=Path, help="CSV to write (default: capacity/<first config file's name>.csv)")
    return parser


def merged_config(paths: list[Path]) -> tuple[dict, list[str]]:
    """config/config.yaml with each file merged over it (nested keys replaced one by one), validated by the
    schemas (defaults filled in), and the modules the files set."""
    from gensynth.config import validate_config
    from gensynth.io import load_yaml
    from gensynth.modules import MODULES

    def merge(base: dict, override: dict) -> dict:
        for key, value in override.items():
            base[key] = merge(base.get(key, {}), value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        return base

    config = load_yaml(ROOT / "config/config.yaml", "default config")
    named: list[str] = []
    for path in paths:
        override = load_yaml(path, "config file") or {}
        named += [name for name in MODULES if name in override and name not in named]
        config = merge(config, override)
    return validate_config(config), named


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from gensynth.capacity import COLUMNS, Declared, measure, plan_row, read_partitions
    from gensynth.io import atomic_open
    from gensynth.modules import module_capacity

    if args.iterations < 1:
        raise GensynthError(f"--iterations {args.iterations}: expected at least 1")
    config, named = merged_config(args.configfile)
    modules = args.modules or named
    if not modules:
        raise GensynthError(f"{', '.join(map(str, args.configfile))}: no module section; name the modules with --modules")
    partitions = read_partitions(args.partitions)
    rows, measured_steps = [], {}  # a step of the same shapes (a scenario's training, another's) is measured once
    for module in modules:
        section = config[module]
        for probe in module_capacity(module).probes(section):
            measured = []
            for step in probe.steps:
                print(f"{module}: {probe.name}: {step.what}, {step.iterations:,} per job, {probe.jobs} job(s)", file=sys.stderr, flush=True)
                key = (step.build, json.dumps(step.kwargs, sort_keys=True))
                if key not in measured_steps:
                    measured_steps[key] = measure(step, args.iterations, args.device, args.threads, args.max_mem_mb)
                measured.append(measured_steps[key])
            declared = Declared(**{key: section["resources"][probe.rule].get(key, 1) for key in ("runtime", "mem_mb", "attempts")})
            rows.append(plan_row(probe, measured, declared, partitions))
    out = args.out or Path("capacity") / f"{args.configfile[0].stem}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    import pandas as pd

    shown = pd.DataFrame(rows, columns=COLUMNS)[list(COLUMNS[:9]) + ["problem"]]
    print(shown.to_string(index=False))
    print(f"wrote {out} (device {rows[0]['device'] if rows else args.device})")
    return 1 if any(row["problem"] for row in rows) else 0


if __name__ == "__main__":
    exit_main(main)
