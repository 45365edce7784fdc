"""The validation panel's QA: every checkpoint scored on the fixed hold-out panel, the top-k ranked, four gates.

Order of work (``scripts/evaluate_validation_panel.py``):

1. the version banner; the panel manifest's SHA-256 against ``expected_hash``, before any model loads;
2. the panel's raw spectra (the model's input, from ``root_dir``; gate 1's raw baseline, from ``baseline_dir``)
   and the reference (:func:`.quality.reference_spectra`: clean spectra, or leave-one-out replicate means);
3. every ``*.pt`` in the checkpoint directory denoises the panel and is scored (PSNR, SAM, ROI), ranked by
   mean PSNR; the first is the one gated, its denoised spectra go to ``<name>_panel_preds/`` and the downstream
   proxy (:mod:`.downstream`, or a script of the user's) scores them (gate 4, ``downstream_metrics.json`` in
   that directory);
4. the Savitzky-Golay baseline (its tuned settings) and the comparison checkpoint (the clean-target arm) are
   scored the same way, side by side;
5. the gates, each with its value, threshold and verdict:

   ====  ===================  ============================================================  =====
   gate  name                 value                                                         rule
   ====  ===================  ============================================================  =====
   1     psnr_gain            mean PSNR(model) - mean PSNR(raw), dB                         >=
   2     sam_no_worse         mean SAM(model) - mean SAM(raw), degrees                      <=
   3     roi_integrity        share of spectra whose peaks and areas all stay within tol.   >=
   4     downstream_proxy     checks passed of the downstream proxy (all four needed)       >=
   ====  ===================  ============================================================  =====

A failed gate is reported as failed (the summary, the log) and the script exits non-zero.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import GensynthError
from ..io import atomic_open, load_json, save_json, sha256_file
from ..provenance import git_commit
from .baseline import SavgolParams
from .data import Manifest, load_grid, load_manifest, load_tree_spectra, save_spectrum
from .downstream import DownstreamThresholds, downstream_metrics, spectrum_doses
from .layout import COMPARISON_NAME, DOWNSTREAM_JSON, QA_FILES, QA_METHOD_FILES, SAVGOL_NAME, denoised_relative_path
from .quality import RoiConfig, load_roi_windows, psnr, reference_spectra, roi_features, spectral_angle
from .settings import GateThresholds  # (the config's settings; importable from here too)

log = logging.getLogger(__name__)
VERSION = "gensynth denoise panel QA v1 (four gates)"
IDENTITY_COLUMNS = ("relative_path", "group_id", "treatment", "sample", "angle", "replicate")


def check_hash(manifest: str | os.PathLike, expected: str | None) -> str:
    """The manifest's SHA-256; a mismatch with ``expected`` is an error (nothing else is read before this)."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise GensynthError(f"{manifest}: panel manifest not found")
    actual = sha256_file(manifest)
    if expected and actual != expected.lower():
        raise GensynthError(
            f"{manifest}: SHA-256 {actual} does not match --expected-hash {expected}: the fixed panel changed (update the hash if the change was intended)"
        )
    return actual


@dataclass
class Panel:
    manifest: Manifest
    grid: np.ndarray
    inputs: np.ndarray  # (N, L) what the models denoise (root_dir)
    raw: np.ndarray  # (N, L) gate 1's raw baseline (baseline_dir)
    reference: np.ndarray  # (N, L)
    reference_kind: str  # clean or replicate_mean
    roi: RoiConfig

    @property
    def files(self) -> pd.DataFrame:
        return self.manifest.files

    @classmethod
    def load(cls, manifest: Path, root_dir: Path, baseline_dir: Path, clean_dir: Path | None, grid_path: Path, roi_path: Path) -> Panel:
        grid = load_grid(grid_path)
        roi = load_roi_windows(roi_path)
        roi.check_grid(grid, grid_path)
        panel = load_manifest(manifest, root_dir)
        inputs = load_tree_spectra(panel, len(grid))
        raw = inputs if Path(baseline_dir) == Path(root_dir) else load_tree_spectra(panel, len(grid), root=baseline_dir)
        clean = None if clean_dir is None else load_tree_spectra(panel, len(grid), root=clean_dir)
        reference, kind = reference_spectra(raw, panel.files["group_id"].to_numpy(), clean, str(manifest))
        return cls(panel, grid, inputs, raw, reference, kind, roi)


def spectrum_metrics(pred: np.ndarray, panel: Panel, thresholds: GateThresholds) -> pd.DataFrame:
    """Per spectrum (keyed by relative_path): PSNR and SAM of ``pred`` and of the raw spectra, ROI shifts and errors."""
    table = panel.files.loc[:, list(IDENTITY_COLUMNS)].copy()
    table["psnr_db"] = psnr(pred, panel.reference)
    table["psnr_raw_db"] = psnr(panel.raw, panel.reference)
    table["psnr_gain_db"] = table["psnr_db"] - table["psnr_raw_db"]
    table["sam_deg"] = spectral_angle(pred, panel.reference)
    table["sam_raw_deg"] = spectral_angle(panel.raw, panel.reference)
    roi_ok = np.ones(len(table), bool)
    for window in panel.roi.windows:
        ours, reference = roi_features(pred, panel.grid, window), roi_features(panel.reference, panel.grid, window)
        shift = ours.peak_nm - reference.peak_nm
        error = (ours.area - reference.area) / np.maximum(np.abs(reference.area), 1e-12)
        table[f"{window.name}_peak_shift_nm"], table[f"{window.name}_area_rel_error"] = shift, error
        roi_ok &= (np.abs(shift) <= thresholds.roi_peak_tolerance_nm) & (np.abs(error) <= thresholds.roi_area_tolerance)
    table["roi_ok"] = roi_ok
    return table


def group_summary(per_spectrum: pd.DataFrame) -> pd.DataFrame:
    return (
        per_spectrum.groupby("group_id", sort=True)
        .agg(
            treatment=("treatment", "first"),
            sample=("sample", "first"),
            angle=("angle", "first"),
            n_spectra=("relative_path", "size"),
            psnr_db=("psnr_db", "mean"),
            psnr_raw_db=("psnr_raw_db", "mean"),
            psnr_gain_db=("psnr_gain_db", "mean"),
            sam_deg=("sam_deg", "mean"),
            sam_raw_deg=("sam_raw_deg", "mean"),
            roi_ok_fraction=("roi_ok", "mean"),
        )
        .reset_index()
    )


def headline(per_spectrum: pd.DataFrame) -> dict[str, float]:
    return {
        "psnr_mean_db": float(per_spectrum["psnr_db"].mean()),
        "psnr_gain_db": float(per_spectrum["psnr_gain_db"].mean()),
        "sam_mean_deg": float(per_spectrum["sam_deg"].mean()),
        "roi_ok_fraction": float(per_spectrum["roi_ok"].mean()),
    }


def gate(name: str, value: float, rule: str, threshold: float, **detail: Any) -> dict[str, Any]:
    passed = value >= threshold if rule == ">=" else value <= threshold
    return {"gate": name, "value": float(value), "rule": rule, "threshold": float(threshold), "passed": bool(passed), **detail}


def evaluate_gates(per_spectrum: pd.DataFrame, downstream: dict[str, Any], thresholds: GateThresholds) -> list[dict[str, Any]]:
    checks = downstream["checks"]
    return [
        gate("psnr_gain", per_spectrum["psnr_gain_db"].mean(), ">=", thresholds.psnr_gain_min_db, unit="dB"),
        gate("sam_no_worse", per_spectrum["sam_deg"].mean() - per_spectrum["sam_raw_deg"].mean(), "<=", thresholds.sam_max_increase_deg, unit="degrees"),
        gate(
            "roi_integrity",
            per_spectrum["roi_ok"].mean(),
            ">=",
            thresholds.roi_min_fraction,
            unit="share of spectra",
            peak_tolerance_nm=thresholds.roi_peak_tolerance_nm,
            area_tolerance=thresholds.roi_area_tolerance,
        ),
        gate(
            "downstream_proxy",
            sum(c["passed"] for c in checks.values()),
            ">=",
            len(checks),
            unit="checks passed",
            checks={name: c["passed"] for name, c in checks.items()},
        ),
    ]


def write_csv(path: Path, table: pd.DataFrame) -> None:
    with atomic_open(path, "w", newline="") as handle:
        table.to_csv(handle, index=False, float_format="%.6g")


def write_predictions(directory: Path, panel: Panel, pred: np.ndarray) -> None:
    for relative, spectrum in zip(panel.files["relative_path"], pred):
        save_spectrum(directory / denoised_relative_path(relative), spectrum)


def run_downstream_script(
    script: Path, preds: Path, manifest: Path, baseline_dir: Path, metadata: Path, grid: Path, roi: Path, thresholds: DownstreamThresholds, dose_column: str
) -> dict[str, Any]:
    """Run a user's downstream proxy script on a predictions directory, with scripts/downstream_proxy_eval.py's
    flags; its JSON (exit 0 passed, 1 failed, else an error)."""
    command = [
        sys.executable,
        str(script),
        "--denoised-dir",
        str(preds),
        "--manifest",
        str(manifest),
        "--root-dir",
        str(baseline_dir),
        "--metadata",
        str(metadata),
        "--wavelength-grid",
        str(grid),
        "--roi-windows",
        str(roi),
        "--dose-column",
        dose_column,
    ]
    for key, value in asdict(thresholds).items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1) or not (preds / DOWNSTREAM_JSON).is_file():
        raise GensynthError(f"{script}: the downstream proxy failed (exit {done.returncode}): {done.stderr.strip()[-1500:]}")
    return load_json(preds / DOWNSTREAM_JSON)


@dataclass
class QaOptions:
    checkpoint_dir: Path
    manifest: Path
    root_dir: Path
    baseline_dir: Path
    metadata: Path  # dose_features.csv
    wavelength_grid: Path
    output_dir: Path
    roi_windows: Path
    gates: GateThresholds
    downstream: DownstreamThresholds
    expected_hash: str | None = None
    downstream_script: Path | None = None  # a user's own gate 4; gensynth's runs in-process without one
    clean_dir: Path | None = None
    savgol_params: Path | None = None
    comparison_checkpoint: Path | None = None
    comparison_name: str = COMPARISON_NAME
    top_k: int = 5
    batch_size: int = 256
    dose_column: str = "dose"


class PanelScores:
    """Each method's per-spectrum scores and denoised panel, their CSVs written to ``out`` as they come."""

    def __init__(self, panel: Panel, out: Path, thresholds: GateThresholds):
        self.panel, self.out, self.thresholds = panel, out, thresholds
        self.tables: dict[str, pd.DataFrame] = {}
        self.predictions: dict[str, np.ndarray] = {}

    def add(self, name: str, pred: np.ndarray) -> dict[str, float]:
        """Score ``pred`` as method ``name``; its headline figures."""
        self.tables[name], self.predictions[name] = spectrum_metrics(pred, self.panel, self.thresholds), pred
        write_csv(self.out / QA_METHOD_FILES["per_spectrum"].format(name=name), self.tables[name])
        write_csv(self.out / QA_METHOD_FILES["per_group"].format(name=name), group_summary(self.tables[name]))
        return headline(self.tables[name])

    def psnr_above(self, name: str, other: str) -> float:
        return float(self.tables[name]["psnr_db"].mean() - self.tables[other]["psnr_db"].mean())

    def raw_headline(self) -> dict[str, float]:
        table = next(iter(self.tables.values()))
        return {
            "psnr_mean_db": float(table["psnr_raw_db"].mean()),
            "psnr_gain_db": 0.0,
            "sam_mean_deg": float(table["sam_raw_deg"].mean()),
            "roi_ok_fraction": float("nan"),
        }


def rank_checkpoints(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checkpoints by mean panel PSNR, best first, each with its rank."""
    ranked = sorted(entries, key=lambda entry: -entry["psnr_mean_db"])
    return [{**entry, "rank": rank} for rank, entry in enumerate(ranked, 1)]


def downstream_check(scores: PanelScores, name: str, options: QaOptions, doses: np.ndarray) -> dict[str, Any]:
    """Gate 4 on method ``name``: its denoised panel written to ``<name>_panel_preds/``, then the downstream proxy
    (in-process, or the user's ``downstream_script``), whose JSON lies in that directory."""
    panel = scores.panel
    preds = scores.out / QA_METHOD_FILES["preds"].format(name=name)
    write_predictions(preds, panel, scores.predictions[name])
    if options.downstream_script is not None:
        return run_downstream_script(
            options.downstream_script,
            preds,
            options.manifest,
            options.baseline_dir,
            options.metadata,
            options.wavelength_grid,
            options.roi_windows,
            options.downstream,
            options.dose_column,
        )
    groups, treatments = panel.files["group_id"].to_numpy(), panel.files["treatment"].to_numpy()
    result = downstream_metrics(
        scores.predictions[name], panel.raw, panel.grid, panel.roi, groups, treatments, doses, options.downstream, str(options.manifest)
    )
    save_json(preds / DOWNSTREAM_JSON, result)
    return result


def run_panel_qa(options: QaOptions, device) -> dict[str, Any]:
    """Steps 1-5 of the module doc; returns the summary (without provenance; the script adds it and writes it)."""
    print(VERSION, flush=True)
    manifest_sha256 = check_hash(options.manifest, options.expected_hash)
    checkpoints = sorted(p for p in Path(options.checkpoint_dir).glob("*.pt") if p.is_file())
    if not checkpoints:
        raise GensynthError(f"{options.checkpoint_dir}: no *.pt checkpoint to evaluate")
    from .inference import Denoiser  # torch: here, so that the QA script's --help and flag errors need none

    panel = Panel.load(options.manifest, options.root_dir, options.baseline_dir, options.clean_dir, options.wavelength_grid, options.roi_windows)
    doses = spectrum_doses(options.metadata, options.dose_column, panel.files["treatment"], options.manifest)
    out = Path(options.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores = PanelScores(panel, out, options.gates)

    def denoise_with(path: Path) -> tuple[dict[str, Any], np.ndarray]:
        denoiser = Denoiser.load(path, device)
        denoiser.check_grid(panel.grid, options.wavelength_grid)
        dose = panel.manifest.dose(denoiser.dose_table(options.metadata))
        info = {"path": str(path), "sha256": denoiser.sha256, "target": denoiser.state.get("target")}
        return info, denoiser(panel.inputs, dose, options.batch_size)

    entries = []
    for path in checkpoints:
        info, pred = denoise_with(path)
        entries.append({"name": path.stem, **info, **scores.add(path.stem, pred)})
        log.info("%s: panel PSNR %.2f dB (raw %.2f)", path.name, entries[-1]["psnr_mean_db"], scores.tables[path.stem]["psnr_raw_db"].mean())
    ranked = rank_checkpoints(entries)
    selected = ranked[0]["name"]

    downstream = downstream_check(scores, selected, options, doses)
    methods = [
        {"method": "raw", "kind": "raw", **scores.raw_headline(), "downstream_passed": None},
        {"method": selected, "kind": "checkpoint (gated)", **headline(scores.tables[selected]), "downstream_passed": downstream["passed"]},
    ]
    summary: dict[str, Any] = {}
    if options.savgol_params is not None:
        params = SavgolParams(**{k: load_json(options.savgol_params)[k] for k in ("window", "polyorder")})
        baseline = scores.add(SAVGOL_NAME, params.apply(panel.raw))
        baseline_downstream = downstream_check(scores, SAVGOL_NAME, options, doses)
        methods.append({"method": SAVGOL_NAME, "kind": "baseline", **baseline, "downstream_passed": baseline_downstream["passed"]})
        summary["baseline"] = {
            "method": "savitzky_golay",
            **asdict(params),
            **baseline,
            "model_minus_baseline_psnr_db": scores.psnr_above(selected, SAVGOL_NAME),
            "downstream": baseline_downstream,
        }
    if options.comparison_checkpoint is not None:
        name = options.comparison_name
        info, pred = denoise_with(options.comparison_checkpoint)
        comparison = scores.add(name, pred)
        methods.append({"method": name, "kind": "comparison", **comparison, "downstream_passed": None})
        summary["comparison"] = {"name": name, **info, **comparison, "gated_minus_comparison_psnr_db": scores.psnr_above(selected, name)}
    write_csv(out / QA_FILES["methods"], pd.DataFrame(methods))

    gates = evaluate_gates(scores.tables[selected], downstream, options.gates)
    return {
        "version": VERSION,
        "manifest": {
            "path": str(options.manifest),
            "sha256": manifest_sha256,
            "expected_sha256": options.expected_hash or None,
            "n_spectra": len(panel.files),
            "n_groups": int(panel.files["group_id"].nunique()),
        },
        "git_commit": git_commit(),
        "reference": panel.reference_kind,
        "ranked_checkpoints": ranked,
        "top_k": [entry["name"] for entry in ranked[: options.top_k]],
        "selected": selected,
        "gates": gates,
        "passed": all(g["passed"] for g in gates),
        "downstream": downstream,
        "methods": methods,
        **summary,
    }


def gate_lines(summary: dict[str, Any]) -> list[str]:
    """The gates as the log shows them: one line each, then the verdict."""
    lines = [
        f"gate {i} {g['gate']:<17} {g['value']:10.4g} {g['rule']} {g['threshold']:<8g} {'PASS' if g['passed'] else 'FAIL'}"
        for i, g in enumerate(summary["gates"], 1)
    ]
    return [*lines, f"panel QA: {'all four gates passed' if summary['passed'] else 'FAILED'} ({summary['selected']})"]
