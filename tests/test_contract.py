"""The module contract: every module registered everywhere, every script's defaults the schema's, every
config error caught before any job, and no run that takes another configuration's results for sources."""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, config_error, snakemake
from gensynth.config import module_schema, schema_default
from gensynth.madness.naming import MNIST_FILES
from gensynth.modules import MODULES, module_dag, module_settings
from gensynth.steps import config_fields, flag_name

SHARED_SCHEMAS = {"config", "resources"}


def test_every_module_is_registered_in_every_place():
    top = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    assert top["properties"]["modules"]["items"]["enum"] == list(MODULES), "config.schema.yaml's modules enum"
    assert [name for name in top["properties"] if name not in ("modules", "device")] == list(MODULES)
    assert set(top["required"]) == {"modules", *MODULES}
    schemas = {p.name.removesuffix(".schema.yaml") for p in (ROOT / "workflow/schemas").glob("*.schema.yaml")}
    assert schemas - SHARED_SCHEMAS == set(MODULES), "one schema file per module"
    includes = re.findall(r'^include: "workflow/rules/(\w+)\.smk"$', (ROOT / "Snakefile").read_text(), re.M)
    assert includes == ["common", *MODULES], "one include per module in the Snakefile, after common.smk"
    assert {p.stem for p in (ROOT / "workflow/rules").glob("*.smk")} == {"common", *MODULES}
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    assert [name for name in config if name not in ("modules", "device")] == list(MODULES), "config/config.yaml sections"
    for name in MODULES:
        dag = module_dag(name)
        assert callable(dag.validate) and callable(dag.final_outputs), name
        assert module_settings(name).STEPS, f"gensynth.{name}.settings.STEPS"
        assert (ROOT / "config/full" / f"{name}.yaml").is_file(), f"config/full/{name}.yaml"
        assert (ROOT / "docs" / f"{name}.md").is_file(), f"docs/{name}.md"
        assert list(ROOT.glob(f"tests/test_{name}*.py")), f"tests/test_{name}*.py"
        rules = set(re.findall(r"^ *rule (\w+):", (ROOT / "workflow/rules" / f"{name}.smk").read_text(), re.M))
        assert rules == set(module_schema(name)["properties"]["resources"]["properties"]), f"{name}: a resources entry per rule"


def test_every_report_caption_exists():
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        for caption in re.findall(r'caption="([^"]+)"', smk.read_text()):
            assert (ROOT / "workflow/rules" / caption).resolve().is_file(), f"{smk.name}: {caption}"


def load_script(stem: str):
    spec = importlib.util.spec_from_file_location(f"script_{stem}", ROOT / "scripts" / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parser_actions(script: str) -> dict[str, argparse.Action]:
    """Option string -> action of a script's parser (``"name sub"`` for a subcommand's)."""
    stem, _, command = script.partition(" ")
    parser = load_script(stem).build_parser()
    if command:
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = subparsers.choices[command]
    return {option: action for action in parser._actions for option in action.option_strings}


def as_config_value(value):
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("module", MODULES)
def test_every_steps_settings_have_the_schemas_keys_and_defaults(module):
    """Adding a setting is its field, its schema entry and its config line: a field whose key the schema lacks,
    or whose default differs from the schema's, fails here."""
    for step, settings in module_settings(module).STEPS.items():
        for field, key in config_fields(settings):
            assert as_config_value(field.default) == schema_default(module, key), f"{step}: {settings.__name__}.{field.name} vs {module}.{key}"


@pytest.mark.parametrize("module", MODULES)
def test_every_script_takes_its_steps_settings_as_flags(module):
    for step, settings in module_settings(module).STEPS.items():
        actions = parser_actions(step)
        for field in dataclasses.fields(settings):
            name = flag_name(field)
            assert name in actions, f"{step}: no flag {name} for {settings.__name__}.{field.name}"
            assert (actions[name].dest, actions[name].default) == (field.name, field.default), f"{step} {name}"


def test_one_key_has_one_flag_name_in_every_module():
    flags: dict[str, set[str]] = {}
    for module in MODULES:
        for settings in module_settings(module).STEPS.values():
            for field, key in config_fields(settings):
                flags.setdefault(key.rsplit(".", 1)[-1], set()).add(flag_name(field))
    assert {leaf: names for leaf, names in flags.items() if len(names) > 1} == {}


def idx_headers(directory: Path, n_train: int = 60_000, n_test: int = 10_000) -> None:
    """MNIST's four files as far as the DAG reads them: their IDX headers (the data rule would read the rest)."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        for kind, shape in (("x", (n, 28, 28)), ("y", (n,))):
            header = bytes([0, 0, 0x08, len(shape)]) + b"".join(size.to_bytes(4, "big") for size in shape)
            with gzip.open(directory / f"{MNIST_FILES[f'{kind}_{split}']}.gz", "wb") as handle:
                handle.write(header)


def test_a_full_scale_run_never_takes_the_default_runs_results_as_sources(project):
    """In a tree that holds the default run's results, the full-scale madness config either fails with one
    line naming the missing MNIST files or schedules the full-scale jobs: never "Nothing to be done"."""
    dry = snakemake(project, "-n", "--cores", "1", "--config", "modules=[madness]").stdout
    for stamp, line in enumerate(re.findall(r"output: (.+)", dry)):  # the default results, in the order jobs make them
        for path in line.split(", "):
            (project / path).parent.mkdir(parents=True, exist_ok=True)
            (project / path).write_bytes(b"x")
            os.utime(project / path, (1e9 + stamp, 1e9 + stamp))
    assert "Nothing to be done" in snakemake(project, "-n", "--cores", "1", "--config", "modules=[madness]").stdout

    full = ["-n", "--cores", "1", "--configfile", "config/full/madness.yaml", "--config", "modules=[madness]"]
    for flags in ([], ["--forceall"]):
        result = snakemake(project, *full, *flags, check=False)
        assert result.returncode != 0 and "Nothing to be done" not in result.stdout
        assert (
            "invalid config: config key 'madness.data.mnist_dir' = datasets/mnist: expected a folder holding "
            "train-images-idx3-ubyte (or train-images-idx3-ubyte.gz): not found there"
        ) in result.stdout + result.stderr

    idx_headers(project / "datasets/mnist")
    scheduled = snakemake(project, *full).stdout
    assert "madness_prepare_data" in scheduled and "madness_generation" in scheduled and "Nothing to be done" not in scheduled


@pytest.mark.parametrize(
    "text,message",
    [
        # atoms: the generator module is only imported by the job
        (
            "atoms:\n  versions:\n    - {name: v, num_images: 10, generator: 'no_such_module:make'}\n",
            "config key 'atoms.versions[0].generator' = no_such_module:make: expected an importable module (no_such_module not found)",
        ),
        # replicas: a slice size the UNet's levels cannot halve (the training job used to fail)
        ("replicas:\n  phantom: {image_size: 34}\n", "config key 'replicas.phantom.image_size' = 34: expected a multiple of 4 (the UNet halves it 2 times"),
        (
            "replicas:\n  data: {source: files, train_npz: mine/train.npz, test_npz: mine/test.npz}\n",
            "config key 'replicas.data.train_npz' = mine/train.npz: expected an existing file (not found)",
        ),
        # madness: image size 10 and a probe timestep beyond n_T (the first error is reported)
        ("madness:\n  data: {image_size: 10}\n  jacobian: {timesteps: [50, 900]}\n", "config key 'madness.data.image_size' = 10: expected a multiple of 4"),
        ("madness:\n  jacobian: {timesteps: [50, 900]}\n", "config key 'madness.jacobian.timesteps' = [50, 900]: expected timesteps below model.n_T = 500"),
        (
            "madness:\n  scenarios:\n    run: [fresh]\n    fresh: {n_real: 400}\n",
            "config key 'madness.scenarios.fresh.n_real' = 400: expected at most 314",
        ),
        (
            "madness:\n  scenarios:\n    full_synthetic: {N_next: 101}\n",
            "config key 'madness.scenarios.full_synthetic.N_next' = 101: expected at most initial.N_with_w = 100",
        ),
    ],
)
def test_config_errors_a_job_would_meet_are_one_line_before_any_job(text, message):
    error = config_error(text)
    assert "\n" not in error and message in error


def test_every_dag_module_imports_nothing_heavy():
    """The Snakefile imports every module's dag.py at parse time (each dry-run pays for what they import)."""
    code = (
        "import sys; from gensynth.modules import MODULES, module_dag; [module_dag(m) for m in MODULES]; "
        "print(sorted(m for m in ('torch', 'diffusers', 'scipy', 'sklearn', 'pandas', 'matplotlib', 'numba') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"
