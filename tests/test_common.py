"""The shared pieces: seeding, atomic I/O and safe loaders, provenance, device, progress."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ENV
from gensynth import io
from gensynth.cli import run_main
from gensynth.device import autocast_dtype, pick_device
from gensynth.errors import GensynthError
from gensynth.progress import progress, progress_enabled
from gensynth.provenance import Provenance
from gensynth.seeding import encode_part, numpy_generator, sha256_seed, torch_generator


# -- seeding ---------------------------------------------------------------------------
def test_sha256_seed_follows_its_documented_encoding():
    parts = (42, 3, "epilepsy", b"\x00")
    encoded = b"".join(
        [
            b"i" + (2).to_bytes(8, "big") + b"42",
            b"i" + (1).to_bytes(8, "big") + b"3",
            b"s" + (8).to_bytes(8, "big") + b"epilepsy",
            b"b" + (1).to_bytes(8, "big") + b"\x00",
        ]
    )
    expected = int.from_bytes(hashlib.sha256(encoded).digest()[:8], "big") & (2**63 - 1)
    assert sha256_seed(*parts) == expected


def test_sha256_seed_is_a_stable_nonnegative_int64():
    # Pinned value: changing the encoding would silently change every replica ever generated.
    assert sha256_seed(42, 0, 5, 1, 1, 7) == sha256_seed(np.int64(42), 0, np.int32(5), 1, 1, 7)
    assert sha256_seed(42, 0, 5, 1, 1, 7) == 889648213617680039
    seeds = [sha256_seed(42, r, z) for r in range(20) for z in range(20)]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**63 for s in seeds)
    np.array(seeds, dtype=np.int64)  # fits int64 without overflow


def test_sha256_seed_parts_do_not_run_together():
    assert sha256_seed(1, 23) != sha256_seed(12, 3)
    assert sha256_seed("1", 2) != sha256_seed(1, 2)


@pytest.mark.parametrize("bad", [True, 1.5, None, [1]])
def test_sha256_seed_refuses_ambiguous_parts(bad):
    with pytest.raises(TypeError):
        encode_part(bad)


def test_generators_reproduce_their_streams():
    seed = sha256_seed("test", 1)
    assert torch.equal(torch.randn(5, generator=torch_generator(seed)), torch.randn(5, generator=torch_generator(seed)))
    assert np.array_equal(numpy_generator(seed).normal(size=5), numpy_generator(seed).normal(size=5))
    assert not torch.equal(torch.randn(5, generator=torch_generator(seed)), torch.randn(5, generator=torch_generator(seed + 1)))


# -- atomic I/O ------------------------------------------------------------------------
def test_npz_round_trip_is_byte_identical(tmp_path):
    arrays = {"images": np.arange(48, dtype=np.uint8).reshape(3, 4, 4), "labels": np.array([1, 2, 3], dtype=np.int64)}
    io.save_npz(tmp_path / "a.npz", arrays)
    io.save_npz(tmp_path / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = io.load_npz(tmp_path / "a.npz", required=["images", "labels"])
    assert loaded["images"].dtype == np.uint8 and np.array_equal(loaded["images"], arrays["images"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz"]  # no temp files left


def test_written_files_get_the_umask_mode_not_mkstemps(tmp_path):
    old = os.umask(0o022)
    try:
        io.save_json(tmp_path / "shared.json", {})
    finally:
        os.umask(old)
    assert (tmp_path / "shared.json").stat().st_mode & 0o777 == 0o644


def test_chunked_member_equals_whole_member(tmp_path):
    whole = np.random.default_rng(0).integers(0, 255, size=(10, 3, 3), dtype=np.uint8)
    with io.npz_writer(tmp_path / "chunked.npz") as writer:
        writer.add_chunks("x", whole.shape, np.uint8, (whole[i : i + 4] for i in range(0, 10, 4)))
    io.save_npz(tmp_path / "whole.npz", {"x": whole})
    assert (tmp_path / "chunked.npz").read_bytes() == (tmp_path / "whole.npz").read_bytes()


def test_chunked_member_with_too_few_rows_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="expected 10"), io.npz_writer(tmp_path / "x.npz") as writer:
        writer.add_chunks("x", (10, 2), np.float32, [np.zeros((4, 2))])
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_neither_target_nor_temp(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(TypeError):
        io.save_json(target, {"bad": object()})
    assert list(tmp_path.iterdir()) == []
    io.save_json(target, {"ok": np.int64(3)})
    with pytest.raises(RuntimeError), io.atomic_open(target, "w") as handle:
        handle.write("half")
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"ok": 3}  # the old artifact survives
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_load_npz_errors_name_the_file(tmp_path):
    with pytest.raises(GensynthError, match="not found"):
        io.load_npz(tmp_path / "missing.npz")
    io.save_npz(tmp_path / "good.npz", {"a": np.zeros(1000)})
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes((tmp_path / "good.npz").read_bytes()[:100])
    with pytest.raises(GensynthError, match="truncated.npz"):
        io.load_npz(truncated)
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(GensynthError, match="text.npz"):
        io.load_npz(tmp_path / "text.npz")
    np.savez(tmp_path / "objects.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(GensynthError, match="pickled"):
        io.load_npz(tmp_path / "objects.npz")
    with pytest.raises(GensynthError, match="missing array.*labels"):
        io.load_npz(tmp_path / "good.npz", required=["a", "labels"])


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_load_checkpoint_refuses_pickles_and_bad_files(tmp_path):
    io.save_checkpoint(tmp_path / "ok.ckpt", {"w": torch.ones(2), "step": 3, "name": "x"})
    assert io.load_checkpoint(tmp_path / "ok.ckpt")["step"] == 3
    torch.save({"evil": Evil()}, tmp_path / "evil.ckpt")
    with pytest.raises(GensynthError, match="evil.ckpt: refused"):
        io.load_checkpoint(tmp_path / "evil.ckpt")
    (tmp_path / "short.ckpt").write_bytes((tmp_path / "ok.ckpt").read_bytes()[:50])
    with pytest.raises(GensynthError, match="short.ckpt: not a readable torch checkpoint"):
        io.load_checkpoint(tmp_path / "short.ckpt")
    (tmp_path / "random.ckpt").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(GensynthError, match="random.ckpt: not a readable torch checkpoint"):
        io.load_checkpoint(tmp_path / "random.ckpt")
    torch.save(torch.zeros(2), tmp_path / "tensor.ckpt")
    with pytest.raises(GensynthError, match="expected a checkpoint dict"):
        io.load_checkpoint(tmp_path / "tensor.ckpt")
    with pytest.raises(GensynthError, match="not found"):
        io.load_checkpoint(tmp_path / "none.ckpt")


def test_the_same_checkpoint_state_gives_the_same_bytes_wherever_it_is_saved(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "step": 3, "history": [{"loss": 0.5}]}
    io.save_checkpoint(tmp_path / "a.ckpt", state)
    io.save_checkpoint(tmp_path / "sub/other_name.pt", state)
    assert (tmp_path / "a.ckpt").read_bytes() == (tmp_path / "sub/other_name.pt").read_bytes()
    assert torch.equal(io.load_checkpoint(tmp_path / "sub/other_name.pt")["w"], state["w"])


def test_load_json_error(tmp_path):
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(GensynthError, match="bad.json: not valid JSON"):
        io.load_json(tmp_path / "bad.json")


def test_save_figure_is_atomic_and_a_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    io.save_figure(fig, tmp_path / "fig.png")
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]


# -- provenance ------------------------------------------------------------------------
def test_provenance_records_inputs_and_context(tmp_path, monkeypatch):
    from gensynth import provenance

    for name in (provenance.RULE_ENV, provenance.CONFIG_ENV):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "in.bin"
    data.write_bytes(b"abc")
    prov = Provenance({"steps": 3}, device="cpu")
    record = prov.record({"data": data})
    assert record["inputs"]["data"]["sha256"] == hashlib.sha256(b"abc").hexdigest()
    # By hand (no DAG job around it): the arguments, no rule and no config section.
    assert record["arguments"] == {"steps": 3} and record["job"] is None and record["config"] is None
    assert torch.__version__.startswith(record["packages"]["torch"])
    assert record["started_utc"] <= record["finished_utc"] and record["started_utc"].endswith("+00:00")
    commit = record["git_commit"]
    assert commit == "unknown" or len(commit.removesuffix("-dirty")) == 40
    assert {"argv", "host", "device"} <= set(record)


def test_git_commit_falls_back_to_unknown(monkeypatch):
    from gensynth import provenance

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv(provenance.GIT_COMMIT_ENV, raising=False)
    assert provenance.git_commit() == "unknown"


# -- device and progress ---------------------------------------------------------------
def test_pick_device():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else pick_device("auto").type)
    with pytest.raises(GensynthError, match="expected one of"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(GensynthError, match="no CUDA"):
            pick_device("cuda")
    assert autocast_dtype(torch.device("cpu")) is None
    assert autocast_dtype(torch.device("cuda")) == torch.float16


def test_progress_is_quiet_unless_asked(monkeypatch):
    monkeypatch.delenv("GENSYNTH_PROGRESS", raising=False)
    assert progress_enabled() == sys.stderr.isatty()
    monkeypatch.setenv("GENSYNTH_PROGRESS", "1")
    assert progress_enabled() is True
    assert progress_enabled(False) is False
    assert list(progress(range(3), desc="x", show=False)) == [0, 1, 2]


def test_run_main_turns_errors_into_exit_2(capsys):
    def main(argv):
        raise GensynthError("data.npz: missing array 'images'")

    assert run_main(main, []) == 2
    assert capsys.readouterr().err.strip() == "error: data.npz: missing array 'images'"


EXIT_MAIN_SCRIPT = """
import atexit, logging, sys
from gensynth.cli import exit_main
from gensynth.errors import GensynthError

def main(argv):
    atexit.register(lambda: print("exit handler ran", file=sys.stderr))
    logging.getLogger("job").info("logged")
    sys.stdout.write("no newline at the end")  # buffered: only a flush writes it
    if sys.argv[1] == "bad":
        raise GensynthError("data.npz: missing array 'images'")
    return int(sys.argv[1])

exit_main(main)
"""


@pytest.mark.parametrize("argument, code", [("0", 0), ("3", 3), ("bad", 2)])
def test_exit_main_flushes_everything_and_exits_with_mains_code(argument, code, tmp_path):
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"  # files, as a job's log: block-buffered
    env = {name: value for name, value in ENV.items() if name != "PYTHONUNBUFFERED"}
    with open(out, "w") as stdout, open(err, "w") as stderr:
        done = subprocess.run([sys.executable, "-c", EXIT_MAIN_SCRIPT, argument], stdout=stdout, stderr=stderr, timeout=120, env=env)
    assert done.returncode == code
    assert out.read_text() == "no newline at the end"
    log = err.read_text()
    assert "INFO job: logged" in log and "exit handler ran" in log
    assert ("error: data.npz: missing array 'images'" in log) == (argument == "bad")
