"""Make the denoise module's default data: procedural UV/Vis spectra in the group's layout.

``corpus`` writes the raw spectra tree, the clean spectra tree (evaluation and the clean-target arm only),
the wavelength grid, manifest_full.csv (with the Noise2Noise duplicates), manifest_train.csv,
manifest_val.csv and validation_panel.csv (whole groups held out), dose_features.csv, dose_stats.json and a
summary of the counts. ``staging`` writes the staging corpus (every treatment with its staging samples) and
its manifest.

    python scripts/make_denoise_data.py corpus --out-dir results/denoise/data --replicates 32
    python scripts/make_denoise_data.py staging --out-dir results/denoise/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gensynth.cli import exit_main
from gensynth.config import schema_default
from gensynth.denoise.phantom import PhantomConfig, PhantomPaths, write_phantom, write_staging
from gensynth.io import save_json
from gensynth.provenance import Provenance

PHANTOM_KEYS = (
    "replicates",
    "wavelength_min",
    "wavelength_max",
    "wavelength_step",
    "read_noise",
    "shot_noise",
    "extra_pairing_groups",
    "panel_groups",
    "val_groups",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="what", required=True)
    for what, help_text in (("corpus", "the main corpus, its manifests and dose metadata"), ("staging", "the staging corpus")):
        command = commands.add_parser(what, help=help_text)
        command.add_argument("--out-dir", required=True, type=Path, help="output folder (the DAG's results/denoise/data)")
        command.add_argument("--seed", type=int, default=schema_default("denoise", "seed"))
        command.add_argument(
            "--doses", type=float, nargs="+", default=schema_default("denoise", "phantom.doses"), help="the treatments' doses, treatment_1 first"
        )
        for key in ("samples", "last_treatment_samples", "staging_last_treatment_samples"):
            command.add_argument(f"--{key.replace('_', '-')}", nargs="+", default=schema_default("denoise", f"phantom.{key}"))
        command.add_argument("--angles", type=int, nargs="+", default=schema_default("denoise", "phantom.angles"), help="degrees")
        for key in PHANTOM_KEYS:
            default = schema_default("denoise", f"phantom.{key}")
            command.add_argument(f"--{key.replace('_', '-')}", type=type(default), default=default)
    return parser


def phantom_config(args: argparse.Namespace) -> PhantomConfig:
    return PhantomConfig.design(
        args.doses,
        args.samples,
        args.last_treatment_samples,
        args.staging_last_treatment_samples,
        angles=args.angles,
        seed=args.seed,
        **{k: getattr(args, k) for k in PHANTOM_KEYS},
    )


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    config = phantom_config(args)
    provenance = Provenance({k: v for k, v in vars(args).items() if k not in ("what", "out_dir")}, "cpu")
    paths = PhantomPaths.under(args.out_dir)
    if args.what == "corpus":
        counts = write_phantom(config, paths)
        summary_path = paths.summary
    else:
        counts = write_staging(config, paths)
        summary_path = paths.staging_summary
    print(", ".join(f"{k} {v}" for k, v in counts.items() if not isinstance(v, list)), flush=True)
    save_json(summary_path, {**counts, "provenance": provenance.record({})})
    return 0


if __name__ == "__main__":
    exit_main(main)
