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
from gensynth.denoise.phantom import PhantomPaths, write_phantom, write_staging
from gensynth.denoise.settings import PhantomConfig
from gensynth.io import save_json
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments, settings_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="what", required=True)
    for what, help_text in (("corpus", "the main corpus, its manifests and dose metadata"), ("staging", "the staging corpus")):
        command = commands.add_parser(what, help=help_text)
        command.add_argument("--out-dir", required=True, type=Path, help="output folder (the DAG's results/denoise/data)")
        # the whole design in both (the DAG passes each its own: PhantomCorpus, PhantomStaging)
        add_settings_arguments(command, PhantomConfig, "denoise")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    config = settings_from_args(PhantomConfig, args)
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
