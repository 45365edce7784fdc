"""atoms: sizes, splits, the streaming writer against the in-memory path, loaders, generator plug-ins."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from gensynth.atoms import (
    block_size,
    check_fractions,
    estimate_memory,
    generate_corpus,
    iter_blocks,
    load_corpus,
    load_generator,
    load_split,
    save_corpus,
    split_assignment,
    split_corpus,
    split_counts,
    write_splits,
)
from gensynth.atoms.storage import read_rows
from gensynth.errors import GensynthError
from gensynth.io import save_npz, sha256_file


@pytest.mark.parametrize(
    "num_images,grid_size,total,readable",
    [
        (100_000, 16, 25_600_000, "24.41 MB"),  # the group's example; its "25.60 MB" disagrees with its formula
        (3, 16, 768, "768 bytes"),
        (10, 16, 2560, "2.50 KB"),
        (5_000_000, 16, 1_280_000_000, "1.19 GB"),
        (1000, 32, 1_024_000, "1000.00 KB"),
    ],
)
def test_estimate_memory_follows_the_groups_formula(num_images, grid_size, total, readable):
    assert estimate_memory(num_images, grid_size) == {
        "bytes": total,
        "readable": readable,
        "num_images": num_images,
        "bytes_per_image": grid_size**2,
    }


@pytest.mark.parametrize(
    "num_images,fractions,counts",
    [
        (100_000, {"train": 0.8, "val": 0.1, "test": 0.1}, (80_000, 10_000, 10_000)),
        (10, {"train": 0.7, "val": 0.2, "test": 0.1}, (7, 2, 1)),
        (7, {"train": 0.8, "val": 0.1, "test": 0.1}, (5, 1, 1)),  # remainders .6 < .7 = .7
        (3, {"train": 1 / 3, "val": 1 / 3, "test": 1 / 3}, (1, 1, 1)),
        (1, {"train": 0.8, "val": 0.1, "test": 0.1}, (1, 0, 0)),
        (999, {"train": 0.5, "val": 0.5, "test": 0.0}, (500, 499, 0)),
    ],
)
def test_split_counts_are_exact_and_sum_to_the_total(num_images, fractions, counts):
    assert tuple(split_counts(num_images, fractions).values()) == counts


@pytest.mark.parametrize(
    "fractions,message",
    [
        ({"train": 0.8, "val": 0.1, "test": 0.2}, "sum to 1"),
        ({"train": 1.2, "val": -0.1, "test": -0.1}, "--train-fraction = 1.2: expected a fraction between 0 and 1"),
        ({"train": 0.0, "val": 0.5, "test": 0.5}, "--train-fraction = 0: expected a fraction > 0"),
        ({"train": 0.8, "val": 0.2}, "expected exactly the keys train, val, test"),
    ],
)
def test_bad_fractions_are_refused(fractions, message):
    with pytest.raises(GensynthError, match=message.replace("(", r"\(")):
        check_fractions(fractions, key="--{}-fraction")


def test_split_assignment_is_a_seeded_partition():
    codes = split_assignment(1000, seed=3)
    assert codes.dtype == np.uint8 and np.bincount(codes).tolist() == [800, 100, 100]
    assert np.array_equal(codes, split_assignment(1000, seed=3))
    assert not np.array_equal(codes, split_assignment(1000, seed=4))
    assert 0.3 < np.flatnonzero(codes == 2).mean() / 1000 < 0.7  # spread over the corpus, not a tail slice


def test_blocks_do_not_depend_on_threads_and_seeds_differ():
    n = block_size(16) + 500  # two blocks, the second partial
    one = generate_corpus(n, show_progress=False, seed=9, threads=1)
    two = generate_corpus(n, show_progress=False, seed=9, threads=2)
    other = generate_corpus(n, show_progress=False, seed=10)
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])
    assert not np.array_equal(one[0], other[0])
    np.random.seed(5)
    from_global = generate_corpus(100, show_progress=False)
    np.random.seed(5)
    assert np.array_equal(from_global[0], generate_corpus(100, show_progress=False)[0])  # the group's np.random.seed style


def test_streamed_files_equal_the_in_memory_path(tmp_path):
    """write_splits (blocks, threads, bounded memory) gives the same bytes as split_corpus + save_corpus."""
    n, seed = block_size(16) + 300, 21
    streamed, in_memory = tmp_path / "streamed", tmp_path / "in_memory"
    streamed.mkdir()
    counts = write_splits(iter_blocks(n, seed, threads=2, show_progress=False), split_assignment(n, seed=seed), streamed, 16)
    images, labels = generate_corpus(n, show_progress=False, seed=seed)
    splits = split_corpus(images, labels, seed=seed)
    save_corpus(splits, in_memory)
    assert counts == {name: len(split[1]) for name, split in splits.items()} == split_counts(n)
    for name in ("train", "val", "test"):
        assert sha256_file(streamed / f"{name}.npz") == sha256_file(in_memory / f"{name}.npz")
    loaded = load_corpus(streamed)
    for name, (split_images, split_labels) in splits.items():
        assert loaded[name][0].dtype == np.uint8 and np.array_equal(loaded[name][0], split_images)
        assert np.array_equal(loaded[name][1], split_labels)
    assert sorted(p.name for p in streamed.iterdir()) == ["test.npz", "train.npz", "val.npz"]  # no temp files left
    rows = np.array([0, 5, 4000, len(splits["train"][1]) - 1])
    assert np.array_equal(read_rows(streamed / "train.npz", "images", rows), splits["train"][0][rows])


def test_a_failing_generator_leaves_no_files(tmp_path):
    def failing_blocks():
        yield from iter_blocks(100, 1, show_progress=False)
        raise GensynthError("boom")

    with pytest.raises(GensynthError, match="boom"):
        write_splits(failing_blocks(), split_assignment(200, seed=1), tmp_path, 16)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(GensynthError, match="gave 100 images, expected 200"):
        write_splits(iter_blocks(100, 1, show_progress=False), split_assignment(200, seed=1), tmp_path, 16)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(60)
def test_a_failing_writer_is_reported_without_blocking_the_producer(tmp_path):
    (tmp_path / "a_file").write_text("")
    n = 3 * block_size(16)  # more blocks than the writers' queues hold
    with pytest.raises(OSError):
        write_splits(iter_blocks(n, 1, show_progress=False), split_assignment(n, seed=1), tmp_path / "a_file" / "sub", 16)


def test_save_corpus_refuses_values_that_do_not_fit_the_dtype(tmp_path):
    images = np.full((2, 4, 4), 300, np.int64)
    with pytest.raises(GensynthError, match="outside uint8 range 0..255"):
        save_corpus({"train": (images, np.ones(2))}, tmp_path)
    save_corpus({"train": (np.full((2, 4, 4), 200, np.int64), np.ones(2, np.int64))}, tmp_path)  # int64 -> uint8 (the group's case)
    images, labels = load_split(tmp_path / "train.npz")
    assert images.dtype == labels.dtype == np.uint8 and images.max() == 200


def test_load_split_names_the_file_and_the_problem(tmp_path):
    save_npz(tmp_path / "no_labels.npz", {"images": np.zeros((3, 4, 4), np.uint8)})
    with pytest.raises(GensynthError, match=r"no_labels.npz: missing array\(s\) labels"):
        load_split(tmp_path / "no_labels.npz")
    save_npz(tmp_path / "mismatch.npz", {"images": np.zeros((3, 4, 4), np.uint8), "labels": np.zeros(2, np.uint8)})
    with pytest.raises(GensynthError, match=r"mismatch.npz: labels of shape \(2,\), expected \(3,\)"):
        load_split(tmp_path / "mismatch.npz")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(GensynthError, match="broken.npz"):
        read_rows(tmp_path / "broken.npz", "images", np.array([0]))
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as archive:
        archive.writestr("x.npy", b"")
    with pytest.raises(GensynthError, match="missing array images"):
        read_rows(tmp_path / "other.npz", "images", np.array([0]))


def _write_module(tmp_path, source: str):
    path = tmp_path / "user_generators.py"
    path.write_text(source)
    return path


def test_user_generators_are_checked(tmp_path):
    path = _write_module(
        tmp_path,
        "import numpy as np\n"
        "def wrong_shape(): return np.zeros((8, 8)), 1\n"
        "def too_bright(rng, n): return np.full((n, 16, 16), 300.0), np.ones(n)\n"
        "def fractional_labels(rng, n): return np.zeros((n, 16, 16)), np.full(n, 1.5)\n"
        "def one_argument(rng): return None\n"
        "def not_a_pair(rng, n): return np.zeros((n, 16, 16))\n"
        "VALUE = 3\n",
    )
    cases = {
        "wrong_shape": "grid of shape (8, 8), expected (16, 16)",
        "too_bright": "images has values outside 0..255",
        "fractional_labels": "labels must be integers",
        "not_a_pair": "expected it to return a pair",
    }
    for name, message in cases.items():
        generator = load_generator(f"{path}:{name}")
        with pytest.raises(GensynthError, match=message.replace("(", r"\(").replace(")", r"\)")):
            generator.batch(np.random.default_rng(0), 4, 16)
    for spec, message in [
        (f"{path}:one_argument", "takes 1 required argument"),
        (f"{path}:VALUE", "has no function 'VALUE'"),
        (f"{path}:missing", "has no function 'missing'"),
        ("no_such_module_xyz:f", "cannot import no_such_module_xyz"),
        (str(tmp_path / "absent.py") + ":f", "absent.py not found"),
        ("justaname", "expected module:function"),
    ]:
        with pytest.raises(GensynthError, match=message):
            load_generator(spec)
