"""denoise data: the phantom's layout and counts (the group's at full scale), and one clear error per bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT
from gensynth.denoise.data import DoseTable, load_grid, load_manifest, load_tree_spectra, partner_pairs
from gensynth.denoise.phantom import PhantomConfig, PhantomPaths, clean_spectrum, corpus_rows, held_out_groups, write_phantom, write_staging
from gensynth.errors import GensynthError

FULL = yaml.safe_load((ROOT / "config/full/denoise.yaml").read_text())["denoise"]["phantom"]
DESIGN = ("doses", "samples", "last_treatment_samples", "staging_last_treatment_samples")


def small_config(**overrides) -> PhantomConfig:
    settings = {
        "doses": [0.0, 1.0, 4.0],
        "samples": ["A", "B"],
        "last_treatment_samples": ["G", "I"],
        "staging_last_treatment_samples": ["F", "G", "I"],
        "angles": [0, 45],
        "replicates": 4,
        "wavelength_step": 10.0,
        "extra_pairing_groups": 2,
        "panel_groups": 3,
        "val_groups": 1,
        **overrides,
    }
    design = [settings.pop(k) for k in DESIGN]
    return PhantomConfig.design(*design, **settings)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> PhantomPaths:
    paths = PhantomPaths.under(tmp_path_factory.mktemp("corpus"))
    write_phantom(small_config(), paths)
    return paths


def test_full_scale_config_reproduces_the_groups_counts():
    config = PhantomConfig.design(
        *(FULL[k] for k in DESIGN), angles=FULL["angles"], **{k: FULL[k] for k in ("replicates", "extra_pairing_groups", "panel_groups", "val_groups")}
    )
    full = corpus_rows(config)
    assert full["relative_path"].nunique() == 8_100 and len(full) == 11_100
    assert len(corpus_rows(config, staging=True)) == 9_000
    held_out = held_out_groups(config, full)
    assert full[full["group_id"].isin(held_out.panel_groups)]["relative_path"].nunique() == 750
    assert len(held_out.panel_samples) == 3 and len(held_out.excluded_groups) == 2  # 5 groups of 3 whole samples, 5 of 3 more
    treatment_6 = full[full["treatment"] == "treatment_6"]
    assert sorted(treatment_6["sample"].unique()) == ["G", "I"]
    assert all(sorted(full[full["treatment"] == f"treatment_{i}"]["sample"].unique()) == list("ABCDE") for i in range(1, 6))


def test_phantom_layout_pairs_and_split(corpus):
    full = pd.read_csv(corpus.manifest_full)
    files = full.drop_duplicates("relative_path")
    assert len(files) == 4 * 2 * 2 + 2 * 2 * 2 * 4  # (2 treatments x 2 samples + treatment_3's G, I) x 2 angles x 4 replicates
    assert len(full) == len(files) + 2 * 4  # two groups paired a second time
    assert (full["relative_path"] != full["n2n_partner"]).all()
    group_of = dict(zip(files["relative_path"], files["group_id"]))
    assert (full["n2n_partner"].map(group_of) == full["group_id"]).all()
    assert (corpus.root / "treatment_3" / "G" / "angle_45" / "replicate_003.npy").is_file()
    assert not (corpus.root / "treatment_3" / "A").exists()
    train, val, panel = (pd.read_csv(p) for p in (corpus.manifest_train, corpus.manifest_val, corpus.panel))
    assert panel["group_id"].nunique() == 3 and val["group_id"].nunique() == 1


def test_held_out_samples_are_whole_and_span_the_doses(corpus):
    """Leave-sample-out: a sample's angles share its bands, so no panel or validation sample is seen in training."""
    full, train, val, panel = (pd.read_csv(p) for p in (corpus.manifest_full, corpus.manifest_train, corpus.manifest_val, corpus.panel))
    samples = [set(zip(frame["treatment"], frame["sample"])) for frame in (train, val, panel)]
    assert not (samples[0] & samples[2]) and not (samples[0] & samples[1]) and not (samples[1] & samples[2])
    held_out = held_out_groups(small_config(), full)
    assert held_out.panel_samples == [f"{t}/{s}" for t, s in dict.fromkeys(zip(panel["treatment"], panel["sample"]))]
    assert set(panel["treatment"]) == {"treatment_1", "treatment_3"}  # the lowest and the highest dose first
    # the panel's second sample and the validation sample give one of their two groups each; the others are in no
    # manifest but the full one
    assert len(held_out.excluded_groups) == 2 and set(held_out.excluded_groups) < set(full["group_id"])
    assert not set(held_out.excluded_groups) & set(pd.concat([train, val, panel])["group_id"])
    assert full["group_id"].nunique() == train["group_id"].nunique() + 3 + 1 + 2


def test_too_few_samples_left_for_training_is_one_error():
    # 6 samples of 2 angles: 7 panel groups take 4 samples, 3 validation groups 2 more
    with pytest.raises(GensynthError, match=r"panel_groups 7 and val_groups 3 hold out 4 \+ 2 whole samples \(2 angle\(s\) each\) of the 6"):
        held_out_groups(small_config(panel_groups=7, val_groups=3), corpus_rows(small_config()))


def test_each_replicate_has_its_own_clean_spectrum(corpus):
    manifest = load_manifest(corpus.manifest_full, corpus.root)
    grid = load_grid(corpus.grid)
    clean = load_tree_spectra(manifest, len(grid), root=corpus.clean)
    group = manifest.files["group_id"].to_numpy()
    first = clean[group == group[0]]
    # shifted bands, scattering and drift: replicates differ by far more than float noise, far less than the spectrum
    spread = np.abs(first - first.mean(axis=0)).max(axis=1)
    assert (spread > 1e-3).all() and (spread < 0.2 * np.ptp(first, axis=1)).all()
    still = small_config(peak_jitter_nm=0.0, width_jitter=0.0, scattering_jitter=0.0, drift=0.0)
    treatment = still.treatments[0]
    assert np.array_equal(clean_spectrum(grid, still, treatment, "A", 0, 0), clean_spectrum(grid, still, treatment, "A", 0, 1))


def test_measurement_noise_is_correlated_over_neighbouring_wavelengths(tmp_path):
    """raw - clean of one spectrum: its lag-1 autocorrelation clears white noise's bound with the correlated noise
    alone, stays inside it without, and the correlated noise has the configured sd."""
    correlated, white = PhantomPaths.under(tmp_path / "correlated"), PhantomPaths.under(tmp_path / "white")
    write_phantom(small_config(read_noise=0.0, shot_noise=0.0, correlated_noise=0.02, correlation_nm=8.0), correlated)
    write_phantom(small_config(correlated_noise=0.0), white)
    relative = pd.read_csv(correlated.manifest_full)["relative_path"]
    noise = {name: np.stack([np.load(p.root / r) - np.load(p.clean / r) for r in relative]) for name, p in (("correlated", correlated), ("white", white))}
    bound = 3 / np.sqrt(noise["white"].shape[1])  # three standard errors of white noise's lag-1 autocorrelation

    def lag1(spectrum: np.ndarray) -> float:
        return float(np.corrcoef(spectrum[:-1], spectrum[1:])[0, 1])

    assert lag1(noise["correlated"][0]) > bound and np.median([lag1(n) for n in noise["correlated"]]) > 0.5
    assert abs(lag1(noise["white"][0])) < bound
    assert noise["correlated"].std() == pytest.approx(0.02, rel=0.15)


def test_spectra_depend_on_the_seed_and_their_own_names_only(corpus, tmp_path):
    manifest = load_manifest(corpus.manifest_full, corpus.root)
    relative = list(manifest.files["relative_path"])
    again = PhantomPaths.under(tmp_path / "again")
    write_phantom(small_config(), again)
    for tree, other in ((corpus.root, again.root), (corpus.clean, again.clean)):
        assert all((tree / r).read_bytes() == (other / r).read_bytes() for r in relative)
    # not on how many others are made
    more = PhantomPaths.under(tmp_path / "more")
    write_phantom(small_config(replicates=6), more)
    for tree, other in ((corpus.root, more.root), (corpus.clean, more.clean)):
        assert all((tree / r).read_bytes() == (other / r).read_bytes() for r in relative)
    write_phantom(small_config(seed=1), PhantomPaths.under(tmp_path / "seed1"))
    assert (tmp_path / "seed1/spectra" / relative[0]).read_bytes() != (corpus.root / relative[0]).read_bytes()


def test_staging_corpus_has_every_staging_sample(corpus):
    counts = write_staging(small_config(), corpus)
    staging = pd.read_csv(corpus.staging_manifest)
    assert counts["staging_rows"] == len(staging) == (2 * 2 + 3) * 2 * 4
    assert sorted(staging[staging["treatment"] == "treatment_3"]["sample"].unique()) == ["F", "G", "I"]


def test_partner_pairs_read_each_file_once_and_pair_it_with_its_partner(corpus):
    manifest = load_manifest(corpus.manifest_train, corpus.root, partners=True)
    inputs, targets = partner_pairs(manifest, len(load_grid(corpus.grid)))
    assert len(inputs) == len(manifest.rows)
    for i in (0, len(inputs) - 1):
        row = manifest.rows.iloc[i]
        assert np.array_equal(inputs[i], np.load(corpus.root / row["relative_path"]).astype(np.float32))
        assert np.array_equal(targets[i], np.load(corpus.root / row["n2n_partner"]).astype(np.float32))


# --- one clear error per bad input ------------------------------------------------------------------------------------------


def user_tree(tmp_path: Path, rows: list[dict], length: int = 5) -> tuple[Path, Path]:
    """A spectra root with one finite spectrum per listed path, and a manifest of ``rows``."""
    root = tmp_path / "root"
    for row in rows:
        path = root / row["relative_path"]
        if ".." not in row["relative_path"] and not os.path.isabs(row["relative_path"]):
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, np.linspace(0, 1, length))
    root.mkdir(exist_ok=True)
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return root, manifest


def row(relative: str, partner: str = "", **overrides) -> dict:
    return {"relative_path": relative, "treatment": "t1", "sample": "A", "angle": 0, "replicate": 0, "group_id": "g1", "n2n_partner": partner, **overrides}


def test_missing_spectrum_names_the_line(tmp_path):
    root, manifest = user_tree(tmp_path, [row("a.npy"), row("b.npy", replicate=1)])
    (root / "b.npy").unlink()
    with pytest.raises(GensynthError, match=r"manifest.csv: line 3: spectrum 'b.npy' not found under"):
        load_manifest(manifest, root)


@pytest.mark.parametrize(
    "relative,message",
    [
        ("../outside.npy", r"line 2 \(relative_path\): '../outside.npy' leaves the root .* \(a '\.\.' component\)"),
        ("sub/../../outside.npy", r"leaves the root .* \(a '\.\.' component\)"),
        ("/etc/passwd", r"line 2 \(relative_path\): '/etc/passwd' is an absolute path"),
    ],
)
def test_paths_that_leave_the_root_are_refused(tmp_path, relative, message):
    root, manifest = user_tree(tmp_path, [row(relative)])
    with pytest.raises(GensynthError, match=message):
        load_manifest(manifest, root)


def test_symlink_out_of_the_root_is_refused(tmp_path):
    root, manifest = user_tree(tmp_path, [row("inside/link.npy")])
    outside = tmp_path / "secret.npy"
    np.save(outside, np.zeros(5))
    (root / "inside/link.npy").unlink()
    (root / "inside/link.npy").symlink_to(outside)
    with pytest.raises(GensynthError, match=r"line 2 \(relative_path\): 'inside/link.npy' leaves the root .* \(a symlink to .*secret.npy\)"):
        load_manifest(manifest, root)
    # a partner may not leave it either
    root, manifest = user_tree(tmp_path / "p", [row("a.npy", partner="../b.npy")])
    with pytest.raises(GensynthError, match=r"line 2 \(n2n_partner\): '../b.npy' leaves the root"):
        load_manifest(manifest, root, partners=True)


def test_length_nan_and_inf_name_file_and_line(tmp_path):
    root, manifest = user_tree(tmp_path, [row("a.npy"), row("b.npy", replicate=1), row("c.npy", replicate=2)])
    loaded = load_manifest(manifest, root)
    np.save(root / "b.npy", np.zeros(7))
    with pytest.raises(GensynthError, match=r"manifest.csv: line 3: .*b.npy has 7 points; the wavelength grid has 5"):
        load_tree_spectra(loaded, 5)
    np.save(root / "b.npy", np.zeros(5))
    np.save(root / "c.npy", np.array([0, 1, np.nan, 1, 0]))
    with pytest.raises(GensynthError, match=r"line 4: .*c.npy holds NaN or inf \(first at index 2\)"):
        load_tree_spectra(loaded, 5)
    np.save(root / "c.npy", np.array([0, np.inf, 0, 1, 0]))
    with pytest.raises(GensynthError, match=r"line 4: .*c.npy holds NaN or inf \(first at index 1\)"):
        load_tree_spectra(loaded, 5)


def test_duplicate_relative_path_with_other_metadata_is_refused(tmp_path):
    root, manifest = user_tree(tmp_path, [row("a.npy", partner="b.npy"), row("b.npy", replicate=1), row("a.npy", partner="b.npy")])
    load_manifest(manifest, root)  # a Noise2Noise duplicate with the same metadata is fine
    root, manifest = user_tree(tmp_path / "bad", [row("a.npy"), row("b.npy", replicate=1), row("a.npy", treatment="t2")])
    with pytest.raises(GensynthError, match=r"line 4: relative_path 'a.npy' is listed on line 2 with treatment 't1', here with 't2'"):
        load_manifest(manifest, root)


def test_treatment_without_dose_features_names_the_line(tmp_path):
    root, manifest = user_tree(tmp_path, [row("a.npy"), row("b.npy", treatment="t9", replicate=1)])
    features = tmp_path / "dose_features.csv"
    features.write_text("treatment,dose\nt1,0.5\n")
    stats = tmp_path / "dose_stats.json"
    stats.write_text(json.dumps({"features": ["dose"], "mean": {"dose": 0.5}, "std": {"dose": 1.0}}))
    dose = DoseTable.load(features, stats)
    with pytest.raises(GensynthError, match=r"manifest.csv: line 3: treatment 't9' has no dose features in .*dose_features.csv"):
        load_manifest(manifest, root).dose(dose)
    features.write_text("treatment,dose\nt1,abc\n")
    with pytest.raises(GensynthError, match=r"dose_features.csv: line 2: dose 'abc' is not a finite number"):
        DoseTable.load(features, stats)


def test_manifest_columns_partners_and_grid(tmp_path):
    root, manifest = user_tree(tmp_path, [row("a.npy")])
    pd.read_csv(manifest).drop(columns="group_id").to_csv(manifest, index=False)
    with pytest.raises(GensynthError, match="missing column\\(s\\) group_id"):
        load_manifest(manifest, root)
    root, manifest = user_tree(tmp_path / "other", [row("a.npy", partner="b.npy"), row("b.npy", replicate=1, group_id="g2", partner="a.npy")])
    with pytest.raises(GensynthError, match=r"line 2 \(n2n_partner\): partner 'b.npy' belongs to group 'g2'; expected a replicate of 'g1'"):
        load_manifest(manifest, root, partners=True)
    grid = tmp_path / "grid.npy"
    np.save(grid, np.array([300.0, 200.0, 400.0]))
    with pytest.raises(GensynthError, match="strictly increasing"):
        load_grid(grid)
