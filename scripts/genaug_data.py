"""Make genaug's dataset: the wound phantom's visits or the user's folder, with patient-grouped folds.

    python scripts/genaug_data.py --source phantom --patients 48 --visits 3 --image-size 16 --folds 3 \
        --out results/genaug/data/dataset.npz --out-info results/genaug/data/dataset.json \
        --out-splits results/genaug/data/splits.csv --out-samples results/genaug/data/samples.png
    python scripts/genaug_data.py --source folder --folder wounds --csv labels.csv ...   # the user's images (docs/genaug.md)

``--example-folder DIR`` also writes the visits in the users' layout (PNGs and labels.csv), as a
template for one's own data.
"""

from __future__ import annotations

import argparse
import csv

import numpy as np

from gensynth.cli import exit_main
from gensynth.genaug.augmentation import PHASES
from gensynth.genaug.data import ROLE_NAMES, TEST, TRAIN, VALIDATION, SplitPlan, read_folder, save_dataset, with_folds, write_folder
from gensynth.genaug.figures import dataset_figure
from gensynth.genaug.phantom import make_phantom
from gensynth.genaug.settings import DataSource, GenaugDataSettings, PhantomConfig
from gensynth.io import atomic_open, save_json
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments, narrow, settings_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_settings_arguments(parser, DataSource, "genaug")
    add_settings_arguments(parser, GenaugDataSettings, "genaug")
    parser.add_argument("--out", required=True, help="output: the dataset NPZ")
    parser.add_argument("--out-info", required=True, help="output: counts per phase, fold and split (JSON, with provenance)")
    parser.add_argument("--out-splits", required=True, help="output: each patient's test fold and validation folds (CSV)")
    parser.add_argument("--out-samples", required=True, help="output: a few visits of each phase (PNG)")
    parser.add_argument("--example-folder", help="also write the visits in the users' folder layout here")
    return parser


def counts(dataset, visits: np.ndarray) -> dict:
    """Visits, patients and visits per phase of a selection (a boolean mask over the visits)."""
    return {
        "visits": int(visits.sum()),
        "patients": len(np.unique(dataset.patient[visits])),
        "phases": {p: int((visits & (dataset.phase == i)).sum()) for i, p in enumerate(PHASES)},
    }


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    provenance = Provenance(vars(args))
    settings = settings_from_args(GenaugDataSettings, args)
    arrays = make_phantom(narrow(settings, PhantomConfig)) if args.source == "phantom" else read_folder(args.folder, args.csv, settings.image_size)
    plan = SplitPlan(settings.folds, settings.partitions, settings.train_fractions)
    dataset = with_folds(arrays, plan, settings.val_fraction, settings.split_seed)
    save_dataset(args.out, dataset)
    if args.example_folder:
        write_folder(arrays, args.example_folder)

    patients = np.unique(dataset.patient)
    with atomic_open(args.out_splits, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patient", "visits", "phases", "test_fold_per_partition", "test_in_splits", "validation_in_splits", "training_in_splits"])
        for patient in patients:
            rows = np.flatnonzero(dataset.patient == patient)
            in_splits = {role: " ".join(str(k) for k in range(dataset.folds) if (dataset.split[k, rows] == role).any()) for role in (TEST, VALIDATION, TRAIN)}
            writer.writerow(
                [
                    patient,
                    len(rows),
                    "".join(PHASES[p] for p in dataset.phase[rows]),
                    " ".join(str(int(f)) for f in dataset.fold[:, rows[0]]),
                    *in_splits.values(),
                ]
            )
    folds = [{**plan.describe(k), **{ROLE_NAMES[role]: counts(dataset, dataset.split[k] == role) for role in ROLE_NAMES}} for k in range(dataset.folds)]
    info = {
        "source": args.source,
        "visits": len(dataset),
        "patients": len(patients),
        "image_size": dataset.image_size,
        "phases": counts(dataset, np.ones(len(dataset), bool))["phases"],
        "folds": folds,
        "provenance": provenance.record(
            {} if args.source == "phantom" else {"csv": f"{args.folder}/{args.csv}"}, {"dataset": args.out, "splits": args.out_splits}
        ),
    }
    save_json(args.out_info, info)
    dataset_figure(dataset, args.out_samples)
    print(f"{len(dataset)} visits of {len(patients)} patients, phases {info['phases']}, {dataset.folds} splits -> {args.out}")
    return 0


if __name__ == "__main__":
    exit_main(main)
