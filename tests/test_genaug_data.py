"""genaug's data: the wound phantom, the patient-grouped folds, the users' folder layout and its errors."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ENV, ROOT
from gensynth.errors import GensynthError
from gensynth.genaug.augmentation import MODALITIES
from gensynth.genaug.data import TEST, TRAIN, VALIDATION, load_dataset, read_folder, save_dataset, with_folds, write_folder
from gensynth.genaug.phantom import PhantomConfig, make_phantom

SMALL = PhantomConfig(patients=6, visits=2, image_size=8, seed=2)


@pytest.fixture(scope="module")
def phantom():
    """The default phantom's scale at 16x16: enough visits per phase for its statistics."""
    return make_phantom(PhantomConfig(patients=48, visits=3, image_size=16))


def test_phantom_is_seeded_per_patient():
    first = make_phantom(SMALL)
    again = make_phantom(SMALL)
    more = make_phantom(PhantomConfig(patients=8, visits=2, image_size=8, seed=2))
    for name, array in first.items():
        np.testing.assert_array_equal(again[name], array)
        np.testing.assert_array_equal(more[name][: len(array)], array)  # adding patients leaves the others unchanged
    other = make_phantom(PhantomConfig(patients=6, visits=2, image_size=8, seed=3))
    assert not np.allclose(other["depth_rgb"], first["depth_rgb"])
    assert first["depth_rgb"].shape == (12, 3, 8, 8) and first["thermal_map"].shape == (12, 1, 8, 8)
    for modality in MODALITIES:
        assert first[modality].dtype == np.float32 and first[modality].min() >= 0 and first[modality].max() <= 1
    assert first["patient"].tolist() == [f"P{p:03d}" for p in range(6) for _ in range(2)] and first["visit"].tolist() == [1, 2] * 6


def centre(images: np.ndarray) -> np.ndarray:
    """Mean of the central quarter of each image, per channel: (N, C)."""
    side = images.shape[-1]
    return images[..., side // 4 : 3 * side // 4, side // 4 : 3 * side // 4].mean(axis=(-2, -1))


def test_phases_are_distinct_but_overlap(phantom):
    """Warmer, redder and deeper wounds early, cooler, paler and flatter late; yet each feature's phases overlap."""
    phase = phantom["phase"]
    assert min(np.bincount(phase, minlength=3)) >= 25  # all three phases, none rare
    temperature = centre(phantom["thermal_map"])[:, 0]
    rgb = centre(phantom["depth_rgb"])
    redness = rgb[:, 0] - rgb[:, 1]
    cavity = centre(phantom["depth_map"])[:, 0] - phantom["depth_map"][:, 0, :, :3].mean(axis=(-2, -1))  # centre vs left border
    for feature, order in ((temperature, -1), (redness, -1), (cavity, -1)):
        means = [feature[phase == p].mean() for p in range(3)]
        assert np.all(order * np.diff(means) > 0), means  # monotone over I, P, R
        for a, b in ((0, 1), (1, 2)):  # neighbouring phases overlap
            low, high = sorted((a, b), key=lambda p: means[p])
            assert feature[phase == low].max() > feature[phase == high].min()


def test_folds_are_grouped_by_patient(phantom):
    dataset = with_folds(phantom, 3, 0.15, 0)
    patients = dataset.patient
    test_sets = []
    for fold in range(3):
        sides = {role: set(patients[dataset.indices(fold, role)]) for role in (TRAIN, VALIDATION, TEST)}
        assert not sides[TRAIN] & sides[TEST] and not sides[TRAIN] & sides[VALIDATION] and not sides[VALIDATION] & sides[TEST]
        assert len(sides[VALIDATION]) == round(0.15 * (48 - len(sides[TEST]))) and len(sides[TEST]) == 16
        test_sets.append(sides[TEST])
        np.testing.assert_array_equal(dataset.fold[0, dataset.indices(fold, TEST)], fold)
    assert set.union(*test_sets) == set(patients) and sum(map(len, test_sets)) == 48  # each patient in exactly one test fold
    assert not np.array_equal(with_folds(phantom, 3, 0.15, 1).fold, dataset.fold)
    with pytest.raises(GensynthError, match="6 patients for 7 patient-grouped folds"):
        with_folds(make_phantom(SMALL), 7, 0.1, 0)
    with pytest.raises(GensynthError, match="leave none to train on"):
        with_folds(make_phantom(SMALL), 3, 0.9, 0)


def test_dataset_npz_round_trip(tmp_path):
    dataset = with_folds(make_phantom(SMALL), 2, 0.2, 0)
    save_dataset(tmp_path / "d.npz", dataset)
    loaded = load_dataset(tmp_path / "d.npz")
    for name, array in dataset.arrays().items():
        np.testing.assert_array_equal(loaded.arrays()[name], array)
    np.savez(tmp_path / "bad.npz", **{**dataset.arrays(), "depth_map": dataset.images["depth_rgb"]})
    with pytest.raises(GensynthError, match=r"bad.npz: array depth_map has shape \(12, 3, 8, 8\); expected \(12, 1, S, S\)"):
        load_dataset(tmp_path / "bad.npz")


@pytest.fixture
def folder(tmp_path):
    arrays = make_phantom(SMALL)
    return write_folder(arrays, tmp_path / "wounds"), arrays


def test_users_folder_reads_back_what_was_written(folder):
    path, arrays = folder
    read = read_folder(path, image_size=8)
    for modality in MODALITIES:
        tolerance = 0.5 / 255 if modality.endswith("rgb") else 0.5 / 65535  # 8-bit RGB, 16-bit maps
        np.testing.assert_allclose(read[modality], arrays[modality], atol=tolerance + 1e-7)
    for name in ("phase", "patient", "visit"):
        np.testing.assert_array_equal(read[name], arrays[name])
    assert read_folder(path, image_size=4)["depth_rgb"].shape == (12, 3, 4, 4)  # resized


def rewrite_csv(path, change):
    """Apply ``change(rows)`` to the labels CSV (a list of dicts, header kept unless the rows say otherwise)."""
    with open(path / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows = change(rows)
    with open(path / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def set_cell(row, column, value):
    def change(rows):
        rows[row][column] = value
        return rows

    return change


BAD_FOLDERS = {
    "missing file": (lambda p: (p / "P001" / "visit2_depth_map.png").unlink(), r"labels.csv, line 5: depth_map file .*P001/visit2_depth_map.png not found"),
    "unknown phase": (
        lambda p: rewrite_csv(p, set_cell(2, "phase", "healing")),
        r"labels.csv, line 4: unknown phase 'healing' \(expected one of I, P, R or inflammatory",
    ),
    "mismatched size": (
        lambda p: Image.new("RGB", (10, 8)).save(p / "P002" / "visit1_thermal_rgb.png"),
        r"line 6: .*P002/visit1_thermal_rgb.png is 10x8 pixels, but .*P000/visit1_depth_rgb.png is 8x8",
    ),
    "missing column": (
        lambda p: rewrite_csv(p, lambda rows: [{k: v for k, v in r.items() if k != "thermal_map"} for r in rows]),
        r"labels.csv: missing column\(s\) thermal_map",
    ),
    "duplicate visit": (lambda p: rewrite_csv(p, set_cell(1, "visit", "1")), r"line 3: patient P000 visit 1 again \(first on line 2\)"),
    "RGB as a map": (
        lambda p: Image.new("RGB", (8, 8)).save(p / "P000" / "visit1_depth_map.png"),
        r"line 2: .*visit1_depth_map.png is a RGB image; expected a greyscale \(8- or 16-bit\) PNG for depth_map",
    ),
    "map out of range": (
        lambda p: (np.save(p / "m.npy", np.full((8, 8), 2.0)), rewrite_csv(p, set_cell(0, "depth_map", "m.npy"))),
        r"line 2: .*m.npy has values outside \[0, 1\]",
    ),
}


@pytest.mark.parametrize("how", list(BAD_FOLDERS))
def test_a_bad_users_folder_is_one_error_naming_the_row_and_file(folder, how):
    path, _ = folder
    breaker, message = BAD_FOLDERS[how]
    breaker(path)
    with pytest.raises(GensynthError, match=message) as error:
        read_folder(path, image_size=8)
    assert "\n" not in str(error.value)


def test_the_data_script_reads_a_folder_and_reports_an_error_in_one_line(folder, tmp_path):
    path, _ = folder
    out = [
        item
        for name, suffix in (("out", "d.npz"), ("out-info", "d.json"), ("out-splits", "s.csv"), ("out-samples", "s.png"))
        for item in (f"--{name}", str(tmp_path / suffix))
    ]
    command = [sys.executable, "scripts/genaug_data.py", "--source", "folder", "--folder", str(path), "--folds", "2", "--image-size", "8", *out]
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(load_dataset(tmp_path / "d.npz")) == 12 and (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    shutil.rmtree(path / "P003")
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "P003/visit1_depth_rgb.png not found" in result.stderr
