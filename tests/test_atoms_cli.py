"""atoms: scripts/generate_dataset.py, its flags, errors, confirmation, files and reproducibility."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ENV, ROOT
from gensynth.atoms import load_corpus
from gensynth.atoms.naming import dataset_files
from gensynth.cli import run_main
from gensynth.io import sha256_file

SCRIPT = ROOT / "scripts/generate_dataset.py"
_spec = importlib.util.spec_from_file_location("generate_dataset", SCRIPT)
generate_dataset = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generate_dataset)
NPZ_FILES = ("train.npz", "val.npz", "test.npz")


def cli(*args) -> int:
    return run_main(generate_dataset.main, [str(a) for a in args])


def run_script(*args, stdin=subprocess.DEVNULL, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        stdin=stdin,
        capture_output=True,
        text=True,
        env=env or ENV,
        timeout=timeout,
        cwd=ROOT,
    )


def digests(directory: Path) -> dict[str, str]:
    return {name: sha256_file(directory / name) for name in NPZ_FILES}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--num-images", 0], "error: --num-images 0: expected a positive number of images"),
        (["--num-images", -5], "error: --num-images -5: expected a positive number of images"),
        (
            ["--num-images", 10, "--train-fraction", 0.9],
            "error: split fractions --train-fraction 0.9 + --val-fraction 0.1 + --test-fraction 0.1 = 1.1: expected them to sum to 1",
        ),
        (["--num-images", 10, "--val-fraction", -0.1, "--train-fraction", 1.0], "error: --val-fraction = -0.1: expected a fraction between 0 and 1"),
        (["--num-images", 10, "--grid-size", 2], "error: --grid-size 2: expected at least 4 pixels"),
        (["--num-images", 10, "--seed", -1], "error: --seed -1: expected an integer from 0 to 4294967295"),
        (["--num-images", 10, "--generator", "nope_module_q:f"], "error: --generator 'nope_module_q:f': cannot import nope_module_q"),
    ],
)
def test_bad_flags_stop_with_one_clear_line_and_write_nothing(tmp_path, capsys, args, message):
    assert cli(*args, "--output-dir", tmp_path / "out", "--yes") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_num_images_is_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli("--yes")
    assert exit_info.value.code == 2 and "--num-images" in capsys.readouterr().err


def test_unwritable_output_dir_is_refused_before_generation(tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    assert cli("--num-images", 10, "--output-dir", tmp_path / "a_file" / "ds", "--yes") == 2
    assert "a_file is a file, not a directory" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere; the case above fails for root too
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert cli("--num-images", 10, "--output-dir", locked / "ds", "--yes") == 2
        assert "is not writable" in capsys.readouterr().err


def test_an_existing_dataset_is_never_overwritten_without_overwrite(tmp_path, capsys):
    out = tmp_path / "ds"
    assert cli("--num-images", 50, "--output-dir", out, "--yes", "--seed", 1) == 0
    before = digests(out)
    assert sorted(out.iterdir()) == sorted(Path(path) for path in dataset_files(out).values())  # the rule's outputs (atoms_dag.path)
    assert cli("--num-images", 50, "--output-dir", out, "--yes", "--seed", 2) == 2
    assert "already holds a dataset (train.npz, val.npz, test.npz, metadata.json): pass --overwrite" in capsys.readouterr().err
    assert digests(out) == before
    assert cli("--num-images", 60, "--output-dir", out, "--yes", "--seed", 2, "--overwrite", "--no-validation-report") == 0
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["generation_params"]["seed"] == 2 and metadata["dataset_info"]["total_count"] == 60
    assert digests(out) != before
    assert not (out / "validation_report.png").exists()  # the old report described the old data
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "test.npz", "train.npz", "val.npz"]  # no staging left


def test_the_output_defaults_to_the_next_free_version_of_today(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    today = dt.date.today().isoformat()
    (tmp_path / "datasets" / f"{today}-v1").mkdir(parents=True)
    (tmp_path / "datasets" / f"{today}-v1" / "metadata.json").write_text("{}")
    (tmp_path / "datasets" / "2020-01-01-v7").mkdir()
    assert cli("--num-images", 20, "--yes", "--no-validation-report") == 0
    assert (tmp_path / "datasets" / f"{today}-v2" / "metadata.json").is_file()
    assert (tmp_path / "datasets" / f"{today}-v1" / "metadata.json").read_text() == "{}"


@pytest.mark.timeout(120)
def test_no_terminal_and_no_yes_stops_with_a_message_and_never_waits(tmp_path):
    """As in CI (root, no stdin): even an open, silent stdin pipe must not make it wait."""
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--num-images", "10", "--output-dir", str(tmp_path / "ds")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        out, err = process.communicate(timeout=90)  # communicate closes stdin only after the child exits
    finally:
        process.kill()
    assert process.returncode == 2
    assert "stdin is not a terminal, so the y/n confirmation cannot be asked: pass --yes" in err
    assert "Dataset Generation Plan:" in out and "Images: 10" in out  # the plan is shown first
    assert time.monotonic() - began < 90
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("answer,generated", [("n", False), ("y", True)])
def test_the_plan_is_confirmed_on_a_terminal(tmp_path, answer, generated):
    try:
        controller, terminal = pty.openpty()
    except OSError as exc:
        pytest.skip(f"no pseudo-terminal here ({exc})")
    out = tmp_path / "ds"
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--num-images", "30", "--output-dir", str(out), "--no-validation-report"],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    os.close(terminal)
    os.write(controller, f"{answer}\n".encode())
    stdout, stderr = process.communicate(timeout=120)
    os.close(controller)
    assert process.returncode == 0, stderr
    assert "Memory: 7.50 KB" in stdout and f"Output: {out}" in stdout
    assert ("Generation cancelled." in stdout) is not generated
    assert (out / "metadata.json").is_file() is generated
    if not generated:
        assert not out.exists()


PUBLISHED_METADATA = {
    "version": str,
    "timestamp": str,
    "generation_params": {"num_images", "seed", "grid_size", "splits"},
    "dataset_info": {"train_count", "val_count", "test_count", "total_count"},
    "memory_info": {"bytes_per_image", "total_bytes", "readable"},
    "file_format": {"dtype", "compression"},
}


def test_metadata_has_every_published_field_and_the_files_digests(tmp_path):
    out = tmp_path / "ds"
    assert cli("--num-images", 1000, "--output-dir", out, "--yes", "--seed", 7, "--train-fraction", 0.7, "--val-fraction", 0.2, "--test-fraction", 0.1) == 0
    metadata = json.loads((out / "metadata.json").read_text())
    for key, wanted in PUBLISHED_METADATA.items():
        assert key in metadata
        if isinstance(wanted, set):
            assert wanted <= set(metadata[key]), key
    assert metadata["version"] == "1.0.0"
    dt.datetime.fromisoformat(metadata["timestamp"])
    assert metadata["generation_params"] == {
        "num_images": 1000,
        "seed": 7,
        "grid_size": 16,
        "splits": {"train": 0.7, "val": 0.2, "test": 0.1},
        "generator": "gensynth.atoms:generate_batch",
    }
    assert metadata["dataset_info"] == {"train_count": 700, "val_count": 200, "test_count": 100, "total_count": 1000}
    assert metadata["memory_info"] == {"bytes_per_image": 256, "total_bytes": 256_000, "readable": "250.00 KB"}
    assert metadata["file_format"] == {"dtype": "uint8", "compression": "npz"}
    for name in NPZ_FILES:
        assert metadata["files"][name] == {"sha256": sha256_file(out / name), "size_bytes": (out / name).stat().st_size}
    provenance = metadata["provenance"]
    assert provenance["git_commit"] and provenance["packages"]["numpy"] == np.__version__
    assert provenance["arguments"]["seed"] == 7
    corpus = load_corpus(out)
    assert {name: len(split[1]) for name, split in corpus.items()} == {"train": 700, "val": 200, "test": 100}
    assert all(split[0].dtype == np.uint8 and split[0].shape[1:] == (16, 16) for split in corpus.values())
    png = (out / "validation_report.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000


def test_same_seed_gives_byte_identical_files(tmp_path):
    args = ["--num-images", 20000, "--yes", "--no-validation-report", "--grid-size", 12]  # two blocks of 14,563
    assert cli(*args, "--seed", 123, "--output-dir", tmp_path / "a", "--threads", 1) == 0
    assert cli(*args, "--seed", 123, "--output-dir", tmp_path / "b", "--threads", 2) == 0
    assert cli(*args, "--seed", 124, "--output-dir", tmp_path / "c") == 0
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert all(digests(tmp_path / "a")[name] != digests(tmp_path / "c")[name] for name in NPZ_FILES)
    metadata = [json.loads((tmp_path / d / "metadata.json").read_text()) for d in "ab"]
    assert metadata[0]["files"] == metadata[1]["files"]
    assert load_corpus(tmp_path / "a")["train"][0].shape == (16000, 12, 12)


def test_a_per_image_generator_plugs_in(tmp_path):
    """The group's kind of function: () -> (grid, label), drawing from NumPy's global state."""
    (tmp_path / "plugin.py").write_text(
        "import numpy as np\ndef constant_tile():\n    label = int(np.random.randint(1, 200))\n    return np.full((16, 16), label), label\n"
    )
    args = ["--num-images", 40, "--yes", "--seed", 5, "--generator", f"{tmp_path / 'plugin.py'}:constant_tile"]
    assert cli(*args, "--output-dir", tmp_path / "a") == 0
    assert cli(*args, "--output-dir", tmp_path / "b", "--no-validation-report") == 0
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    corpus = load_corpus(tmp_path / "a")
    np.random.seed(5)
    expected = [int(np.random.randint(1, 200)) for _ in range(40)]
    labels = np.concatenate([split[1] for split in corpus.values()])
    assert sorted(labels.tolist()) == sorted(expected)
    for images, split_labels in corpus.values():
        assert np.all(images == split_labels[:, None, None])  # each image carries its own label
    metadata = json.loads((tmp_path / "a" / "metadata.json").read_text())
    assert metadata["generation_params"]["generator"].endswith("plugin.py:constant_tile")
    assert metadata["provenance"]["inputs"]["generator"]["sha256"] == sha256_file(tmp_path / "plugin.py")


def test_a_batch_generator_module_plugs_in_and_bad_output_is_refused(tmp_path, capsys, monkeypatch):
    (tmp_path / "my_batches.py").write_text(
        "import numpy as np\n"
        "def stripes(rng, n, grid_size=16):\n"
        "    labels = rng.integers(0, 2, n)\n"
        "    return np.repeat(labels[:, None, None] * 255, grid_size * grid_size).reshape(n, grid_size, grid_size), labels\n"
        "def short(rng, n):\n"
        "    return np.zeros((n - 1, 16, 16)), np.zeros(n - 1)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli("--num-images", 100, "--yes", "--grid-size", 8, "--generator", "my_batches:stripes", "--output-dir", "ds") == 0
    images, labels = load_corpus(tmp_path / "ds")["train"]
    assert images.shape == (80, 8, 8) and set(np.unique(images)) <= {0, 255}
    assert np.array_equal(images[:, 0, 0] // 255, labels)
    assert cli("--num-images", 100, "--yes", "--generator", "my_batches:short", "--output-dir", "bad") == 2
    assert "--generator my_batches:short: images of shape (99, 16, 16), expected (100, 16, 16)" in capsys.readouterr().err
    assert not any((tmp_path / "bad").glob("*.npz")) and not any((tmp_path / "bad").glob(".staging-*"))


def test_progress_bar_uses_the_groups_description_and_unit(tmp_path):
    result = run_script("--num-images", 20000, "--yes", "--no-validation-report", "--output-dir", tmp_path / "ds", env={**ENV, "GENSYNTH_PROGRESS": "1"})
    assert result.returncode == 0, result.stderr
    assert "Generating images: 100%" in result.stderr and "20000/20000" in result.stderr and "img/s" in result.stderr
