"""The validation panel's QA: every method scored on the fixed hold-out panel against the same gates, the
checkpoints ranked on the validation manifest, the selected one gated and promoted.

Order of work (``scripts/evaluate_validation_panel.py``):

1. the version banner; the panel manifest's SHA-256 against ``expected_hash``, before any model loads;
2. the leakage check: the panel's (treatment, sample) pairs and the exact content (SHA-256) of its spectra
   against the training and validation manifests; with ``forbid_overlap`` an overlapping panel is refused;
3. the panel's raw spectra (the models' input, from ``root_dir``; the raw reference of the gates, from
   ``baseline_dir``) and the reference (:func:`.quality.reference_spectra`: clean spectra, or leave-one-out
   replicate means);
4. every ``*.pt`` under the checkpoint directory is ranked by mean PSNR on the validation manifest (on the
   panel only when there is none, and then the summary says so); the first is the one gated;
5. every method is scored on the panel the same way: the raw spectra, the identity map, each tuned baseline
   (:mod:`.baseline`), each checkpoint and each comparison checkpoint (the clean-target arm); each method's
   denoised panel goes to ``<name>_panel_preds/`` with the downstream proxy's JSON (:mod:`.downstream`, or a
   script of the user's);
6. the gates, for every method, each a margin over the raw spectra:

   ====  ==================  ================================================================  =====
   gate  name                value                                                             rule
   ====  ==================  ================================================================  =====
   1     psnr_gain           mean PSNR(method) - mean PSNR(raw), dB                            >=
   2     sam_improvement     mean SAM(raw) - mean SAM(method), degrees                         >=
   3     roi_integrity       share of spectra whose peaks and band areas all stay within tol.  >=
   4     downstream_proxy    checks passed of the downstream proxy (all four needed)           >=
   ====  ==================  ================================================================  =====

   A gate that the raw spectra or the identity map passes cannot tell a denoiser from doing nothing: it is
   marked "not discriminating", and the QA fails on it as on a failed gate;
7. the methods table: each method's panel PSNR and SAM with 95 % intervals over the panel's held-out samples
   (and over the training seeds for the arms, :mod:`.intervals`), its gates, ranked by PSNR; the paired gaps
   Noise2Noise minus clean targets and model minus the best baseline (chosen on the training data).

The selected checkpoint is copied to ``promote_to`` when it passes (or when ``enforce_gates`` is off); with
``enforce_gates`` a failed or non-discriminating gate exits non-zero.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import GensynthError
from ..io import atomic_open, atomic_path, load_json, save_json, sha256_file
from ..provenance import git_commit
from .baseline import load_baselines
from .data import Manifest, load_grid, load_manifest, load_tree_spectra, sample_labels, save_spectrum
from .downstream import DownstreamThresholds, downstream_metrics, spectrum_doses
from .intervals import crossed_interval
from .layout import COMPARISON_NAME, DOWNSTREAM_JSON, QA_FILES, QA_METHOD_FILES, denoised_relative_path
from .quality import RoiConfig, load_roi_windows, psnr, reference_spectra, roi_features, spectral_angle
from .settings import GateThresholds  # (the config's settings; importable from here too)

log = logging.getLogger(__name__)
VERSION = "gensynth denoise panel QA v2 (gates against raw and identity, leakage check, baselines, seeds)"
IDENTITY_COLUMNS = ("relative_path", "group_id", "treatment", "sample", "angle", "replicate")
GATES = ("psnr_gain", "sam_improvement", "roi_integrity", "downstream_proxy")
GATE_KEYS = {  # the config keys a user tightens when a gate does not discriminate
    "psnr_gain": "denoise.qa.gates.psnr_gain_min_db",
    "sam_improvement": "denoise.qa.gates.sam_min_improvement_deg",
    "roi_integrity": "denoise.qa.gates.roi_min_fraction",
    "downstream_proxy": "denoise.qa.downstream",
}
REFERENCES = ("raw", "identity")  # what a gate must fail to discriminate


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
    inputs: np.ndarray  # (N, L) what the methods denoise (root_dir)
    raw: np.ndarray  # (N, L) the gates' raw reference (baseline_dir)
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


def spectrum_hashes(spectra: np.ndarray) -> list[str]:
    return [hashlib.sha256(np.ascontiguousarray(row, dtype=np.float32).tobytes()).hexdigest() for row in spectra]


def overlap_report(panel: Panel, others: dict[str, tuple[Manifest, np.ndarray]]) -> dict[str, Any]:
    """What the panel shares with each other manifest (given with its spectra): (treatment, sample) pairs, and
    spectra of identical content."""
    units, hashes = set(sample_labels(panel.files)), dict(zip(spectrum_hashes(panel.inputs), panel.files["relative_path"]))
    report = {}
    for name, (manifest, spectra) in others.items():
        shared_units = sorted(units & set(sample_labels(manifest.files)))
        other_hashes = set(spectrum_hashes(spectra))
        duplicates = sorted(relative for digest, relative in hashes.items() if digest in other_hashes)
        report[name] = {
            "manifest": str(manifest.path),
            "shared_samples": shared_units,
            "duplicate_spectra": len(duplicates),
            "first_duplicates": duplicates[:5],
        }
    return report


def refuse_overlap(report: dict[str, Any], panel_path: Path) -> None:
    """One line naming every manifest the panel overlaps, and how."""
    problems = [
        f"{entry['manifest']} ({len(entry['shared_samples'])} treatment/sample pair(s), e.g. {', '.join(entry['shared_samples'][:3]) or '-'}; "
        f"{entry['duplicate_spectra']} spectra of identical content)"
        for entry in report.values()
        if entry["shared_samples"] or entry["duplicate_spectra"]
    ]
    if problems:
        raise GensynthError(
            f"{panel_path}: the panel overlaps {'; '.join(problems)}: a panel must share no sample with training or validation "
            "(--no-forbid-overlap scores it anyway, and the summary records the overlap)"
        )


def spectrum_metrics(pred: np.ndarray, panel: Panel, thresholds: GateThresholds) -> pd.DataFrame:
    """Per spectrum (keyed by relative_path): PSNR and SAM of ``pred`` and of the raw spectra, ROI peak shifts and band-area errors."""
    table = panel.files.loc[:, list(IDENTITY_COLUMNS)].copy()
    table["unit"] = sample_labels(panel.files)
    table["psnr_db"] = psnr(pred, panel.reference)
    table["psnr_raw_db"] = psnr(panel.raw, panel.reference)
    table["psnr_gain_db"] = table["psnr_db"] - table["psnr_raw_db"]
    table["sam_deg"] = spectral_angle(pred, panel.reference)
    table["sam_raw_deg"] = spectral_angle(panel.raw, panel.reference)
    roi_ok = np.ones(len(table), bool)
    for window in panel.roi.windows:
        ours, reference = roi_features(pred, panel.grid, window), roi_features(panel.reference, panel.grid, window)
        shift = ours.peak_nm - reference.peak_nm
        error = (ours.band_area - reference.band_area) / np.maximum(np.abs(reference.band_area), 1e-12)
        table[f"{window.name}_peak_shift_nm"], table[f"{window.name}_band_area_rel_error"] = shift, error
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


def gate(name: str, value: float, rule: str, threshold: float, **detail: Any) -> dict[str, Any]:
    passed = value >= threshold if rule == ">=" else value <= threshold
    return {"gate": name, "value": float(value), "rule": rule, "threshold": float(threshold), "passed": bool(passed), **detail}


def evaluate_gates(per_spectrum: pd.DataFrame, downstream: dict[str, Any], thresholds: GateThresholds) -> list[dict[str, Any]]:
    """One method's four gates (module doc, 6.)."""
    checks = downstream["checks"]
    return [
        gate("psnr_gain", per_spectrum["psnr_gain_db"].mean(), ">=", thresholds.psnr_gain_min_db, unit="dB"),
        gate(
            "sam_improvement",
            per_spectrum["sam_raw_deg"].mean() - per_spectrum["sam_deg"].mean(),
            ">=",
            thresholds.sam_min_improvement_deg,
            unit="degrees",
        ),
        gate(
            "roi_integrity",
            per_spectrum["roi_ok"].mean(),
            ">=",
            thresholds.roi_min_fraction,
            unit="share of spectra",
            peak_tolerance_nm=thresholds.roi_peak_tolerance_nm,
            band_area_tolerance=thresholds.roi_area_tolerance,
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
    checkpoint_dir: Path | None  # every *.pt under it; or
    manifest: Path
    root_dir: Path
    baseline_dir: Path
    metadata: Path  # dose_features.csv
    wavelength_grid: Path
    output_dir: Path
    roi_windows: Path
    gates: GateThresholds
    downstream: DownstreamThresholds
    checkpoints: list[Path] | None = None  # these only, named by their path under their common folder
    expected_hash: str | None = None
    downstream_script: Path | None = None  # a user's own gate 4; gensynth's runs in-process without one
    clean_dir: Path | None = None
    baselines: Path | None = None  # scripts/tune_baselines.py's JSON
    comparison_checkpoints: list[Path] = field(default_factory=list)
    comparison_name: str = COMPARISON_NAME
    train_manifest: Path | None = None
    val_manifest: Path | None = None  # the checkpoints' ranking; without it the panel ranks them (and the summary says so)
    forbid_overlap: bool = True
    enforce_gates: bool = True
    promote_to: Path | None = None
    top_k: int = 5
    batch_size: int = 256
    dose_column: str = "dose"


@dataclass
class Method:
    """One scored method: its denoised panel, per-spectrum table, downstream proxy and gates."""

    name: str
    kind: str  # raw, identity, baseline, checkpoint, comparison
    pred: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    table: pd.DataFrame | None = None
    downstream: dict[str, Any] | None = None
    gates: list[dict[str, Any]] | None = None

    def unit_means(self, column: str) -> np.ndarray:
        """(J,) the metric's mean per held-out sample, samples sorted."""
        return self.table.groupby("unit", sort=True)[column].mean().to_numpy()


def checkpoint_name(path: Path, directory: Path) -> str:
    """A checkpoint's name in the outputs: its path under the directory without ``.pt``, ``/`` as ``-``."""
    return "-".join(path.relative_to(directory).with_suffix("").parts)


def comparison_names(paths: list[Path], name: str) -> list[str]:
    """One comparison checkpoint is ``name``; several are ``name-<folder>`` (the DAG's seed folders)."""
    if len(paths) == 1:
        return [name]
    names = [f"{name}-{p.parent.name}" for p in paths]
    if len(set(names)) < len(names):
        raise GensynthError(f"comparison checkpoints {', '.join(map(str, paths))}: expected one per folder (their names come from the folders)")
    return names


def find_checkpoints(options: QaOptions) -> tuple[Path, list[Path]]:
    """The checkpoints to rank and the folder that names them: every ``*.pt`` under ``checkpoint_dir``, or the
    listed ``checkpoints`` (each a file) under their common folder."""
    if options.checkpoints:
        missing = [str(p) for p in options.checkpoints if not Path(p).is_file()]
        if missing:
            raise GensynthError(f"checkpoint(s) not found: {', '.join(missing)}")
        paths = sorted(Path(p) for p in options.checkpoints)
        return Path(os.path.commonpath([p.parent for p in paths])), paths
    directory = Path(options.checkpoint_dir)
    paths = sorted(p for p in directory.rglob("*.pt") if p.is_file())
    if not paths:
        raise GensynthError(f"{directory}: no *.pt checkpoint to evaluate")
    return directory, paths


def rank_checkpoints(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checkpoints by mean ranking PSNR (validation, else panel), best first, each with its rank."""
    ranked = sorted(entries, key=lambda entry: (-entry["ranking_psnr_db"], entry["name"]))
    return [{**entry, "rank": rank} for rank, entry in enumerate(ranked, 1)]


def downstream_check(method: Method, panel: Panel, options: QaOptions, doses: np.ndarray, out: Path) -> dict[str, Any]:
    """Gate 4 on a method: its denoised panel written to ``<name>_panel_preds/``, then the downstream proxy
    (in-process, or the user's ``downstream_script``), whose JSON lies in that directory."""
    preds = out / QA_METHOD_FILES["preds"].format(name=method.name)
    write_predictions(preds, panel, method.pred)
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
    result = downstream_metrics(method.pred, panel.raw, panel.grid, panel.roi, groups, treatments, doses, options.downstream, str(options.manifest))
    save_json(preds / DOWNSTREAM_JSON, result)
    return result


def score(method: Method, panel: Panel, options: QaOptions, doses: np.ndarray, out: Path) -> Method:
    """Every figure and gate of a method; its CSVs and denoised panel written to ``out``."""
    method.table = spectrum_metrics(method.pred, panel, options.gates)
    write_csv(out / QA_METHOD_FILES["per_spectrum"].format(name=method.name), method.table)
    write_csv(out / QA_METHOD_FILES["per_group"].format(name=method.name), group_summary(method.table))
    method.downstream = downstream_check(method, panel, options, doses, out)
    method.gates = evaluate_gates(method.table, method.downstream, options.gates)
    return method


def discrimination(methods: dict[str, Method], selected: Method) -> list[dict[str, Any]]:
    """The selected checkpoint's gates, each with the raw spectra's and the identity's value and verdict, and
    whether it discriminates (both fail it)."""
    gates = []
    for i, entry in enumerate(selected.gates):
        references = {name: methods[name].gates[i] for name in REFERENCES}
        gates.append(
            {
                **entry,
                **{f"{name}_value": ref["value"] for name, ref in references.items()},
                **{f"{name}_passed": ref["passed"] for name, ref in references.items()},
                "discriminating": not any(ref["passed"] for ref in references.values()),
            }
        )
    return gates


def interval_columns(prefix: str, cells: np.ndarray) -> dict[str, float]:
    interval = crossed_interval(cells)
    return {prefix: interval["mean"], f"{prefix}_low": interval["low"], f"{prefix}_high": interval["high"]}


def method_row(name: str, kind: str, members: list[Method]) -> dict[str, Any]:
    """A row of the methods table: one method, or an arm's checkpoints (its seeds) pooled with their interval."""
    row = {"method": name, "kind": kind, "seeds": len(members)}
    row |= interval_columns("psnr_db", np.stack([m.unit_means("psnr_db") for m in members]))
    row |= interval_columns("psnr_gain_db", np.stack([m.unit_means("psnr_gain_db") for m in members]))
    row |= interval_columns("sam_deg", np.stack([m.unit_means("sam_deg") for m in members]))
    row["roi_ok_fraction"] = float(np.mean([m.table["roi_ok"].mean() for m in members]))
    for i, gate_name in enumerate(GATES):
        row[f"{gate_name}_passed"] = float(np.mean([m.gates[i]["passed"] for m in members])) if len(members) > 1 else bool(members[0].gates[i]["passed"])
    return row


def methods_table(methods: dict[str, Method], arms: dict[str, list[Method]]) -> pd.DataFrame:
    """Every method and every arm of two or more checkpoints, ranked by mean panel PSNR."""
    rows = [method_row(m.name, m.kind, [m]) for m in methods.values()]
    rows += [method_row(f"{arm} ({len(members)} seeds)", "arm", members) for arm, members in arms.items() if len(members) > 1]
    table = pd.DataFrame(rows).sort_values("psnr_db", ascending=False, kind="stable")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table.reset_index(drop=True)


def paired_gap(first: list[Method], second: list[Method], column: str = "psnr_db") -> dict[str, Any]:
    """Mean of ``first`` minus ``second``, paired by held-out sample and, where both have several, by seed (in order)."""
    a = np.stack([m.unit_means(column) for m in first])
    b = np.stack([m.unit_means(column) for m in second])
    return {"metric": column, **crossed_interval(a - b)}


def best_baseline(baselines: dict[str, Any]) -> str | None:
    """The baseline of least training criterion (the partner MSE): chosen on the training data, never on the panel."""
    if not baselines:
        return None
    return min(baselines, key=lambda name: baselines[name]["training_mse"])


def promote(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def run_panel_qa(options: QaOptions, device) -> dict[str, Any]:
    """Steps 1-7 of the module doc; returns the summary (without provenance; the script adds it and writes it)."""
    print(VERSION, flush=True)
    manifest_sha256 = check_hash(options.manifest, options.expected_hash)
    checkpoint_dir, checkpoints = find_checkpoints(options)
    from .inference import Denoiser  # torch: here, so that the QA script's --help and flag errors need none

    panel = Panel.load(options.manifest, options.root_dir, options.baseline_dir, options.clean_dir, options.wavelength_grid, options.roi_windows)
    validation = (
        None
        if options.val_manifest is None
        else Panel.load(options.val_manifest, options.root_dir, options.root_dir, options.clean_dir, options.wavelength_grid, options.roi_windows)
    )
    others = {} if validation is None else {"validation": (validation.manifest, validation.inputs)}
    if options.train_manifest is not None:
        train = load_manifest(options.train_manifest, options.root_dir)
        others = {"train": (train, load_tree_spectra(train, len(panel.grid))), **others}
    leakage = overlap_report(panel, others)
    if options.forbid_overlap:
        refuse_overlap(leakage, options.manifest)
    doses = spectrum_doses(options.metadata, options.dose_column, panel.files["treatment"], options.manifest)
    out = Path(options.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    def denoise_with(path: Path) -> tuple[dict[str, Any], np.ndarray, float]:
        """The checkpoint's record, its denoised panel and its ranking PSNR (validation, else panel)."""
        denoiser = Denoiser.load(path, device)
        denoiser.check_grid(panel.grid, options.wavelength_grid)
        dose_table = denoiser.dose_table(options.metadata)
        pred = denoiser(panel.inputs, panel.manifest.dose(dose_table), options.batch_size)
        ranking = panel if validation is None else validation
        ranking_pred = pred if validation is None else denoiser(validation.inputs, validation.manifest.dose(dose_table), options.batch_size)
        info = {"path": str(path), "sha256": denoiser.sha256, "target": denoiser.state.get("target")}
        return info, pred, float(psnr(ranking_pred, ranking.reference).mean())

    methods: dict[str, Method] = {
        "raw": Method("raw", "raw", panel.raw),
        "identity": Method("identity", "identity", panel.inputs),
    }
    if options.baselines is not None:
        training = load_json(options.baselines)["methods"]  # each baseline's criterion on the training rows
        for name, baseline in load_baselines(options.baselines).items():
            info = {"title": baseline.title, "params": baseline.params(), "training_mse": training[name]["mse"]}
            methods[name] = Method(name, "baseline", baseline.apply(panel.inputs), info)
    entries = []
    for path in checkpoints:
        info, pred, ranking_psnr = denoise_with(path)
        name = checkpoint_name(path, checkpoint_dir)
        methods[name] = Method(name, "checkpoint", pred, info)
        entries.append({"name": name, **info, "ranking_psnr_db": ranking_psnr})
        log.info("%s: ranking PSNR %.2f dB", name, ranking_psnr)
    for path, name in zip(options.comparison_checkpoints, comparison_names(list(options.comparison_checkpoints), options.comparison_name)):
        info, pred, _ = denoise_with(path)
        methods[name] = Method(name, "comparison", pred, info)
    for method in methods.values():
        score(method, panel, options, doses, out)

    ranked = rank_checkpoints(entries)
    for entry in ranked:
        entry["panel_psnr_db"] = float(methods[entry["name"]].table["psnr_db"].mean())
    selected = methods[ranked[0]["name"]]
    gates = discrimination(methods, selected)
    not_discriminating = [g["gate"] for g in gates if not g["discriminating"]]
    passed = all(g["passed"] for g in gates) and not not_discriminating

    arms = {checkpoint_dir.name: [m for m in methods.values() if m.kind == "checkpoint"]}
    comparison = [m for m in methods.values() if m.kind == "comparison"]
    if comparison:
        arms[options.comparison_name] = comparison
    table = methods_table(methods, arms)
    write_csv(out / QA_FILES["methods"], table)
    gaps = {}
    if comparison and len(comparison) == len(arms[checkpoint_dir.name]):
        gaps["gated_minus_comparison"] = {"first": checkpoint_dir.name, "second": options.comparison_name, **paired_gap(arms[checkpoint_dir.name], comparison)}
    baselines = [m for m in methods.values() if m.kind == "baseline"]
    best = best_baseline({m.name: m.info for m in baselines})
    if best is not None:
        gaps["gated_minus_best_baseline"] = {"first": checkpoint_dir.name, "second": best, **paired_gap(arms[checkpoint_dir.name], [methods[best]])}
        gaps["gated_minus_each_baseline"] = {m.name: paired_gap(arms[checkpoint_dir.name], [m]) for m in baselines}

    promoted = None
    if options.promote_to is not None and (passed or not options.enforce_gates):
        promote(Path(selected.info["path"]), Path(options.promote_to))
        promoted = str(options.promote_to)
    return {
        "version": VERSION,
        "manifest": {
            "path": str(options.manifest),
            "sha256": manifest_sha256,
            "expected_sha256": options.expected_hash or None,
            "n_spectra": len(panel.files),
            "n_groups": int(panel.files["group_id"].nunique()),
            "held_out_samples": sorted(set(sample_labels(panel.files))),
        },
        "git_commit": git_commit(),
        "reference": panel.reference_kind,
        "leakage": {"forbid_overlap": options.forbid_overlap, **leakage},
        "ranked_on": "panel" if validation is None else "validation",
        "ranking_manifest": str(options.manifest if validation is None else options.val_manifest),
        "ranked_checkpoints": ranked,
        "top_k": [entry["name"] for entry in ranked[: options.top_k]],
        "selected": selected.name,
        "gates": gates,
        "not_discriminating": not_discriminating,
        "passed": passed,
        "enforced": options.enforce_gates,
        "promoted": promoted,
        "downstream": selected.downstream,
        "methods": table.to_dict(orient="records"),
        "method_gates": {name: m.gates for name, m in methods.items()},
        "baselines": {name: m.info for name, m in methods.items() if m.kind == "baseline"},
        "best_baseline": best,
        "gaps": gaps,
    }


def gate_lines(summary: dict[str, Any]) -> list[str]:
    """The gates as the log shows them: one line each with the raw spectra's and the identity's values, then the verdict."""
    lines = [
        f"gate {i} {g['gate']:<17} {g['value']:10.4g} {g['rule']} {g['threshold']:<8g} {'PASS' if g['passed'] else 'FAIL'}"
        f"  (raw {g['raw_value']:.4g}, identity {g['identity_value']:.4g}{'' if g['discriminating'] else ': NOT DISCRIMINATING'})"
        for i, g in enumerate(summary["gates"], 1)
    ]
    if summary["not_discriminating"]:
        names = ", ".join(summary["not_discriminating"])
        keys = ", ".join(GATE_KEYS[name] for name in summary["not_discriminating"])
        verdict = f"panel QA: FAILED: gate(s) {names} not discriminating: the raw spectra or the identity map pass them; tighten {keys}"
    elif summary["passed"]:
        verdict = f"panel QA: all four gates passed ({summary['selected']})"
    else:
        verdict = f"panel QA: FAILED ({summary['selected']}: {', '.join(g['gate'] for g in summary['gates'] if not g['passed'])})"
    if not summary["enforced"]:
        verdict += " [gates not enforced: denoise.qa.enforce_gates is false]"
    return [*lines, verdict]
