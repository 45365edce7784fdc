"""madness data: the IDX reader on small files written here, the digits default, the real-data NPZ, bad inputs."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from gensynth.cli import run_main
from gensynth.errors import GensynthError
from gensynth.io import save_npz
from gensynth.madness.data import load_images, load_mnist_idx, load_real, load_real_data, read_idx, save_images, save_real_data
from gensynth.madness.lenet import LeNetConfig, build_lenet, checked_extractor, save_lenet
from gensynth.madness.naming import MNIST_FILES

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: str) -> int:
    """A script's main() in-process, as its command line runs it; returns the exit code."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return run_main(module.main, list(args))


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """The IDX encoding, written out by hand: 0, 0, type, rank, big-endian uint32 sizes, big-endian values."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist(directory: Path, n_train: int = 12, n_test: int = 6, gz: bool = False, size: int = 28) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, stem in MNIST_FILES.items():
        data = idx_bytes(arrays[name])
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / stem).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader_round_trips_plain_and_gzipped_files(tmp_path, gz):
    written = write_mnist(tmp_path, gz=gz)
    read = load_mnist_idx(tmp_path)
    for name, array in written.items():
        assert read[name].dtype == np.uint8 and np.array_equal(read[name], array), name


def test_idx_reader_decodes_big_endian_wider_types(tmp_path):
    values = np.array([[1, -2], [300, -40000]], dtype=np.int32)
    (tmp_path / "ints").write_bytes(idx_bytes(values, 0x0C))
    assert np.array_equal(read_idx(tmp_path / "ints"), values)
    floats = np.array([0.5, -1.25], dtype=np.float64)
    (tmp_path / "floats").write_bytes(idx_bytes(floats, 0x0E))
    assert np.array_equal(read_idx(tmp_path / "floats"), floats)


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "not an IDX file"),
        (b"\x00\x00\x42\x01\x00\x00\x00\x01\x05", "type code 0x42 unknown"),
        (b"\x00\x00\x08\x03\x00\x00", "header truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "header says shape (5,) (13 bytes), but the file has 10 bytes"),
        (b"", "not an IDX file"),
    ],
)
def test_malformed_idx_is_one_clear_error(tmp_path, content, expected):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(GensynthError, match="bad-idx1-ubyte") as error:
        read_idx(path)
    assert expected in str(error.value)


def test_bad_gzip_is_one_clear_error(tmp_path):
    (tmp_path / "x.gz").write_bytes(b"not gzip at all")
    with pytest.raises(GensynthError, match=r"x\.gz: not readable as gzip"):
        read_idx(tmp_path / "x.gz")


def test_missing_or_mismatched_mnist_files_are_named(tmp_path):
    with pytest.raises(GensynthError, match="not a directory"):
        load_mnist_idx(tmp_path / "nowhere")
    write_mnist(tmp_path)
    (tmp_path / MNIST_FILES["y_test"]).unlink()
    with pytest.raises(GensynthError, match="t10k-labels-idx1-ubyte \\(or t10k-labels-idx1-ubyte.gz\\) not found"):
        load_mnist_idx(tmp_path)
    write_mnist(tmp_path)
    (tmp_path / MNIST_FILES["y_train"]).write_bytes(idx_bytes(np.zeros(11, np.uint8)))  # 12 images, 11 labels
    with pytest.raises(GensynthError, match="has 12 images but .*train-labels-idx1-ubyte has 11 labels"):
        load_mnist_idx(tmp_path)
    write_mnist(tmp_path)
    (tmp_path / MNIST_FILES["y_train"]).write_bytes(idx_bytes(np.full(12, 10, np.uint8)))
    with pytest.raises(GensynthError, match=r"labels must lie in \[0, 10\), found 10..10"):
        load_mnist_idx(tmp_path)
    write_mnist(tmp_path)
    (tmp_path / MNIST_FILES["x_train"]).write_bytes(idx_bytes(np.zeros((12, 784), np.uint8)))
    with pytest.raises(GensynthError, match=r"expected images of rank 3 \(N, H, W\), found shape \(12, 784\)"):
        load_mnist_idx(tmp_path)


def test_mnist_source_scales_resizes_and_subsamples(tmp_path):
    written = write_mnist(tmp_path, n_train=20, n_test=8)
    data = load_real_data("mnist_idx", 28, seed=0, mnist_dir=tmp_path)
    # [0, 255] -> [-1, 1] exactly, pixel for pixel, in MNIST's own split
    assert np.allclose(data.x_train[:, 0], written["x_train"] / 255.0 * 2 - 1, atol=1e-6)
    assert np.array_equal(data.y_test, written["y_test"]) and data.y_test.dtype == np.int64
    small = load_real_data("mnist_idx", 16, seed=0, mnist_dir=tmp_path, max_train=5)
    assert small.x_train.shape == (5, 1, 16, 16) and small.x_test.shape == (8, 1, 16, 16)
    assert small.x_train.min() >= -1 and small.x_train.max() <= 1
    with pytest.raises(GensynthError, match="madness.data.mnist_dir is empty"):
        load_real_data("mnist_idx", 16, seed=0, mnist_dir="")


def test_digits_default_is_a_deterministic_stratified_split_in_range():
    first = load_real_data("digits", 16, seed=0)
    again = load_real_data("digits", 16, seed=0)
    other = load_real_data("digits", 16, seed=1)
    assert first.x_train.shape == (1257, 1, 16, 16) and first.x_test.shape == (540, 1, 16, 16)
    assert len(first.y_train) + len(first.y_test) == 1797  # every bundled digit, once
    assert first.x_train.dtype == np.float32 and first.x_train.min() == -1.0 and first.x_train.max() == 1.0
    assert all(np.array_equal(a, b) for a, b in zip(first.arrays().values(), again.arrays().values()))
    assert not np.array_equal(first.y_test, other.y_test)
    assert np.bincount(first.y_test).min() >= 50  # stratified: every class held out


def test_real_data_and_image_sets_are_validated_on_load(tmp_path):
    data = load_real_data("digits", 8, seed=0, max_train=30, max_test=20)
    save_real_data(tmp_path / "real.npz", data)
    assert np.array_equal(load_real(tmp_path / "real.npz").x_test, data.x_test)
    save_npz(tmp_path / "missing.npz", {"x_train": data.x_train, "y_train": data.y_train})
    with pytest.raises(GensynthError, match="missing array\\(s\\) x_test, y_test"):
        load_real(tmp_path / "missing.npz")
    save_images(tmp_path / "set.npz", data.x_test, data.y_test)
    x, y = load_images(tmp_path / "set.npz")
    assert np.array_equal(x, data.x_test) and y.dtype == np.int64
    save_npz(tmp_path / "range.npz", {"x": data.x_test * 3, "y": data.y_test})
    with pytest.raises(GensynthError, match="range.npz: array x must hold finite floats in \\[-1, 1\\]"):
        load_images(tmp_path / "range.npz")
    save_npz(tmp_path / "labels.npz", {"x": data.x_test, "y": data.y_test[:-1]})
    with pytest.raises(GensynthError, match="array y must have shape \\(20,\\) to match x"):
        load_images(tmp_path / "labels.npz")
    np.savez(tmp_path / "pickled.npz", x=np.array([{"a": 1}], dtype=object), y=np.zeros(1, np.int64))  # pickles x
    with pytest.raises(GensynthError, match="pickled"):
        load_images(tmp_path / "pickled.npz")


def test_prepare_data_script_writes_the_npz_and_refuses_bad_flags(tmp_path, capsys):
    write_mnist(tmp_path / "mnist", gz=True)
    out = tmp_path / "real.npz"
    assert (
        run_script(
            "madness_prepare_data",
            "--source",
            "mnist_idx",
            "--mnist-dir",
            str(tmp_path / "mnist"),
            "--image-size",
            "28",
            "--out",
            str(out),
            "--out-info",
            str(tmp_path / "real.json"),
        )
        == 0
    )
    assert load_real(out).x_train.shape == (12, 1, 28, 28)
    assert (
        run_script(
            "madness_prepare_data",
            "--source",
            "mnist_idx",
            "--mnist-dir",
            str(tmp_path / "none"),
            "--image-size",
            "28",
            "--out",
            str(tmp_path / "x.npz"),
            "--out-info",
            str(tmp_path / "x.json"),
        )
        == 2
    )
    assert "error: madness.data.mnist_dir" in capsys.readouterr().err and not (tmp_path / "x.npz").exists()
    assert (
        run_script(
            "madness_prepare_data",
            "--source",
            "digits",
            "--image-size",
            "16",
            "--test-fraction",
            "1.5",
            "--out",
            str(tmp_path / "x.npz"),
            "--out-info",
            str(tmp_path / "x.json"),
        )
        == 2
    )
    assert "--test-fraction 1.5" in capsys.readouterr().err


def test_metrics_refuse_an_extractor_below_the_accuracy_threshold(tmp_path):
    data = load_real_data("digits", 8, seed=0, max_test=100)
    untrained = build_lenet(LeNetConfig(image_size=8), seed=0)  # chance level, about 0.1
    save_lenet(tmp_path / "lenet.ckpt", untrained, {})
    x, y = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    with pytest.raises(GensynthError, match=r"lenet.ckpt: feature extractor's test accuracy 0\.\d+ is below madness.feature_extractor.min_accuracy = 0.95"):
        checked_extractor(tmp_path / "lenet.ckpt", x, y, 0.95)
    _, accuracy = checked_extractor(tmp_path / "lenet.ckpt", x, y, 0.0)
    assert accuracy < 0.5
    with pytest.raises(GensynthError, match="the extractor takes 1x8x8 images, the data has 1x16x16"):
        checked_extractor(tmp_path / "lenet.ckpt", torch.zeros(4, 1, 16, 16), y[:4], 0.0)
