"""What a user meets off the `make run` path: jobs run the workflow's Python, code edits rerun exactly their
artifacts, `--config` overrides, profiles without flags, provenance, a clean report, a README that runs."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import zipfile

import pytest
import yaml

from conftest import BIN, DAG_CONFIG, ENV, ROOT, dag_config, snakemake
from gensynth.config_docs import render
from gensynth.io import sha256_file

# One cheap job of each module in the default configuration: its target, rule, script and a library module.
CHEAP_TARGETS = {
    "atoms": ("results/atoms/2025-10-22-v1/metadata.json", "atoms_dataset", "scripts/generate_dataset.py", "workflow/gensynth/atoms/lattice.py"),
    "replicas": ("results/replicas/data/train.npz", "replicas_phantom", "scripts/make_replica_data.py", "workflow/gensynth/replicas/phantom.py"),
    "madness": ("results/madness/data/real.npz", "madness_prepare_data", "scripts/madness_prepare_data.py", "workflow/gensynth/madness/data.py"),
    "denoise": ("results/denoise/data/wavelength_grid.npy", "denoise_phantom", "scripts/make_denoise_data.py", "workflow/gensynth/denoise/phantom.py"),
    "genaug": ("results/genaug/data/dataset.npz", "genaug_data", "scripts/genaug_data.py", "workflow/gensynth/genaug/phantom.py"),
}


def jobs_and_reasons(output: str) -> dict[str, str]:
    """Rule -> reason of every job in a dry-run."""
    found = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
        reason = re.search(r"reason: (.+)", block)
        found[rule] = reason.group(1) if reason else ""
    return {rule: reason for rule, reason in found.items() if rule != "all"}


def test_jobs_run_the_workflows_python_whatever_path_says(project):
    """`.venv/bin/snakemake` from a shell without the venv on PATH: the job still finds torch & co."""
    env = {**ENV, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [str(BIN / "snakemake"), CHEAP_TARGETS["replicas"][0], "--cores", "1"], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (project / CHEAP_TARGETS["replicas"][0]).is_file()


def test_editing_code_reruns_exactly_the_jobs_it_makes(project):
    targets = [target for target, *_ in CHEAP_TARGETS.values()]
    snakemake(project, *targets, "--cores", "2")
    assert jobs_and_reasons(snakemake(project, "-n", *targets).stdout) == {}

    def edited(paths) -> dict[str, str]:
        originals = {path: (project / path).read_text() for path in paths}
        for path, text in originals.items():
            (project / path).write_text(text + "\n# an edit\n")
        changed = jobs_and_reasons(snakemake(project, "-n", *targets).stdout)
        for path, text in originals.items():
            (project / path).write_text(text)
        return changed

    every_rule = {rule: "Code has changed since last execution" for _, rule, _, _ in CHEAP_TARGETS.values()}
    assert edited([script for _, _, script, _ in CHEAP_TARGETS.values()]) == every_rule  # each module's script
    assert edited([library for *_, library in CHEAP_TARGETS.values()]) == every_rule  # a gensynth module each uses
    _, rule, _, library = CHEAP_TARGETS["atoms"]
    assert edited([library]) == {rule: "Code has changed since last execution"}  # one module's code: its job alone
    assert edited(["workflow/gensynth/madness/jacobian.py"]) == {}  # a module none of them imports reruns none


def commands(output: str) -> list[str]:
    return sorted(line for line in output.splitlines() if line.startswith("Shell command:"))


def test_nested_config_overrides_give_the_same_dag_as_a_config_file(project):
    target = ["-n", "-p", "--forceall", "results/replicas/replica_000.npz", "results/madness/probes/unit0.npz"]
    (project / "override.yaml").write_text("replicas:\n  sample: {num_inference_steps: 10, use_ema: false}\nmadness:\n  jacobian: {timesteps: [20, 300]}\n")
    from_file = snakemake(project, *target, "--configfile", "config/config.yaml", "override.yaml").stdout
    from_flag = snakemake(
        project, *target, "--config", 'replicas={"sample":{"num_inference_steps":10,"use_ema":false}}', 'madness={"jacobian":{"timesteps":[20,300]}}'
    ).stdout
    assert "--num-inference-steps 10" in from_flag and "--no-use-ema" in from_flag and "--timesteps 20 300" in from_flag
    strip_digest = re.compile(r"GENSYNTH_\w+=\S* ")
    assert [strip_digest.sub("", c) for c in commands(from_flag)] == [strip_digest.sub("", c) for c in commands(from_file)]


def test_plain_snakemake_runs_with_the_default_profile(project):
    result = snakemake(project, CHEAP_TARGETS["atoms"][0], check=False)
    assert result.returncode == 0 and "cores have to be specified" not in result.stdout + result.stderr
    assert "workflow specific profile profiles/default" in result.stdout + result.stderr


CLUSTER_KEYS = re.compile(r"^(executor|jobs|resources|default-resources|set-resources|slurm-.*|retries|latency-wait)$")


def test_the_workflow_profile_holds_only_cluster_neutral_keys_and_the_slurm_profile_keeps_its_own(project):
    default = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())
    assert not [key for key in default if CLUSTER_KEYS.match(key)], "profiles/default overrides --profile keys one by one"
    output = snakemake(project, "-n", "--profile", "profiles/slurm", "results/replicas/model/best.ckpt").stdout
    resources = re.findall(r"resources: (.+)", output)
    assert resources and all("slurm_extra=--signal=TERM@120" in line and "cpus_per_task" not in line for line in resources), (
        "the slurm profile's default-resources apply"
    )
    assert any("gpu=1" in line and "mem_mb=4000" in line for line in resources)


def test_a_local_run_gives_each_gpu_one_job_at_a_time(project):
    from gensynth.dagtools import visible_gpus

    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1"}) == 2 and visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == 0
    result = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "1", CHEAP_TARGETS["replicas"][0]],
        cwd=project,
        env={**ENV, "CUDA_VISIBLE_DEVICES": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "at most 1 job(s) with gpu=1 at once" in result.stdout + result.stderr
    without = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "1", CHEAP_TARGETS["replicas"][0], "--forcerun", "replicas_phantom"],
        cwd=project,
        env={**ENV, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert without.returncode == 0 and "with gpu=1 at once" not in without.stdout + without.stderr  # no GPU: no limit


def test_the_slurm_test_runs_only_where_asked(tmp_path):
    env = {key: value for key, value in ENV.items() if key not in ("CI", "GENSYNTH_SLURM_TEST")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(ROOT / "tests/test_slurm.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "2 skipped" in result.stdout and "set GENSYNTH_SLURM_TEST=1 (CI sets CI=true)" in result.stdout, result.stdout[-2000:]


@pytest.mark.dag
def test_dag_provenance_names_the_rule_the_config_section_and_the_artifacts_own_digest(dag_run):
    meta = json.loads((dag_run / "results/replicas/replica_000_meta.json").read_text())
    provenance = meta["provenance"]
    assert provenance["job"] == {"rule": "replicas_generate", "wildcards": {"replica_id": "000"}, "slurm_job_id": None}
    assert provenance["config"]["module"] == "replicas"
    assert provenance["config"]["section"]["sample"] == dag_config()["replicas"]["sample"]
    assert re.fullmatch(r"[0-9a-f]{64}", provenance["config"]["sha256"])
    assert provenance["outputs"]["npz"]["sha256"] == sha256_file(dag_run / "results/replicas/replica_000.npz")
    assert provenance["arguments"]["replica_id"] == 0 and provenance["device"]["name"] == "cpu"
    generation = json.loads((dag_run / "results/madness/matched_real/w0/unit1/rep0/generation_1_w0.json").read_text())["provenance"]
    assert generation["job"]["wildcards"] == {"scenario": "matched_real", "w": "0", "unit": "1", "rep": "0", "g": "1"}
    assert generation["outputs"]["model"]["sha256"] == sha256_file(dag_run / "results/madness/matched_real/w0/unit1/rep0/model_1_w0.ckpt")


@pytest.mark.dag
def test_dag_report_builds_without_docutils_messages(dag_run):
    result = snakemake(dag_run, "--configfile", DAG_CONFIG, "--report", "report.zip")
    assert "System Message" not in result.stdout + result.stderr
    with zipfile.ZipFile(dag_run / "report.zip") as archive:
        pages = [archive.read(name).decode("utf-8", "replace") for name in archive.namelist() if name.endswith((".html", ".js"))]
    assert pages
    assert not [page for page in pages if "Docutils System Message" in page or "System Message: " in page]
    assert any("five" in page for page in pages)  # workflow.rst: the five workflows this DAG runs


def readme_commands() -> list[str]:
    """Every `snakemake ...` command line of the README's code blocks and inline code."""
    text = (ROOT / "README.md").read_text()
    found = re.findall(r"^ {4}(snakemake[^\n#]*)", text, re.M) + re.findall(r"`(snakemake [^`]+)`", text)
    return sorted({line.strip() for line in found if "<" not in line})


def test_every_readme_snakemake_command_dry_runs(project, tmp_path):
    """As the README says, after `make slurm-profile`: the literal `--profile slurm` finds the cluster profile."""
    home = tmp_path / "home"
    subprocess.run(["make", "-s", "slurm-profile", f"HOME={home}"], cwd=project, check=True, capture_output=True, timeout=60)
    assert (home / ".config/snakemake/slurm/config.yaml").is_file()
    env = {**ENV, "HOME": str(home)}
    assert len(readme_commands()) >= 8
    for line in re.findall(r"^ {4}(mkdir -p runs/[^\n#]*)", (ROOT / "README.md").read_text(), re.M):
        subprocess.run(line, shell=True, cwd=project, check=True, timeout=60)  # a run folder the README makes
    dry_runs = {}  # one dry-run per distinct DAG: -n is added to each, -p changes only what is printed
    for command in readme_commands():
        args = shlex.split(command)[1:]
        if "--report" in args or "--lint" in args:
            continue  # they need a finished run (the report test above) or are the lint test
        if "--configfile" in args and any("full/madness" in a for a in args):
            continue  # needs the MNIST files (test_contract covers it)
        dry_runs.setdefault(tuple(a for a in args if a not in ("-n", "-p")), command)
    for args, command in dry_runs.items():
        result = subprocess.run([str(BIN / "snakemake"), *args, "-n"], cwd=project, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{command}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        if "slurm" in args:  # the cluster profile's own default resources
            assert "Using profiles slurm" in result.stdout + result.stderr and "slurm_extra=--signal=TERM@120" in result.stdout, command


def documented_script_calls() -> list[tuple[str, list[str]]]:
    """(script, flags) of every `python scripts/x.py ...` line of the README and docs/."""
    calls = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text().replace("\\\n", " ")
        for script, rest in re.findall(r"python scripts/(\w+)\.py([^\n`]*)", text):
            calls.append((script, re.findall(r"(?<!\S)(--[a-z][\w-]*)", rest)))
    return calls


# Every script's --help and flag errors, in one interpreter where torch, diffusers and transformers cannot be
# imported: a script that needs them before parsing fails to load. The benchmarks exist to time torch and
# import it at load.
HELP_WITHOUT_TORCH = """
import contextlib, importlib.abc, importlib.util, io, json, sys
from pathlib import Path

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "diffusers", "transformers"):
            raise ImportError(f"{name} imported")

sys.meta_path.insert(0, NoTorch())
failed = {}
for script in map(Path, sys.argv[1:]):
    sys.path.insert(0, str(script.parent))
    spec = importlib.util.spec_from_file_location(f"script_{script.stem}", script)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        for argv, code in ((["--help"], 0), (["--no-such-flag"], 2)):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                try:
                    module.build_parser().parse_args(argv)
                    failed[script.name] = f"{argv} did not exit"
                except SystemExit as exc:
                    if exc.code != code:
                        failed[script.name] = f"{argv} exited {exc.code}"
    except ImportError as exc:
        failed[script.name] = str(exc)
print(json.dumps(failed))
"""


def test_every_scripts_help_and_flag_errors_answer_without_torch():
    scripts = [p for p in sorted((ROOT / "scripts").glob("*.py")) if not p.name.startswith("bench_")]
    assert len(scripts) >= 25
    result = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH, *map(str, scripts)], capture_output=True, text=True, env=ENV, check=True, timeout=300)
    assert json.loads(result.stdout.splitlines()[-1]) == {}


# The scripts whose code (the script and the gensynth modules it imports, at any depth) imports diffusers:
# those that build, train, sample or load its models and schedulers, and denoise's and the trainers' EMA
# (diffusers' EMAModel). Read from the import statements, as the code digest reads them.
DIFFUSERS_SCRIPTS = {
    "bench_genaug",
    "bench_jacobian",
    "bench_replicas",
    "genaug_classify",  # a users' folder of pipelines sampled per batch, and the EMA
    "genaug_pool",  # the pipelines that fill the pools
    "genaug_quality",
    "genaug_train_pipeline",
    "generate_replicas",
    "madness_generation",
    "madness_jacobian",
    "madness_make_probes",  # the DDPM noise schedule of the probes
    "madness_original_jacobian",  # the group's checkpoints load into the ContextUnet (a diffusers ModelMixin)
    "madness_sample",
    "madness_train_initial",
    "plan_capacity",  # the steps it times build the modules' models
    "train_denoiser",  # EMA weights
    "train_replica_model",
}


def test_only_the_scripts_that_use_diffusers_models_import_it():
    import ast

    from gensynth.codedigest import code_files, import_statements

    def imports_diffusers(path) -> bool:
        for node in import_statements(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [] if node.level else [node.module or ""]
            if any(name.split(".")[0] == "diffusers" for name in names):
                return True
        return False

    found = {p.stem for p in (ROOT / "scripts").glob("*.py") if any(imports_diffusers(f) for f in code_files(p, ROOT / "workflow"))}
    assert found == DIFFUSERS_SCRIPTS


def test_every_documented_script_flag_exists(monkeypatch):
    import argparse
    import importlib.util

    parsers = {}
    for script, flags in documented_script_calls():
        if script not in parsers:
            spec = importlib.util.spec_from_file_location(f"doc_{script}", ROOT / "scripts" / f"{script}.py")
            module = importlib.util.module_from_spec(spec)
            monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
            spec.loader.exec_module(module)
            parser = module.build_parser() if hasattr(module, "build_parser") else None
            options = set()
            for action in [] if parser is None else parser._actions:
                options.update(action.option_strings)
                if isinstance(action, argparse._SubParsersAction):
                    for sub in action.choices.values():
                        options.update(o for a in sub._actions for o in a.option_strings)
            parsers[script] = options
        if parsers[script]:
            assert not set(flags) - parsers[script], f"scripts/{script}.py has no {sorted(set(flags) - parsers[script])}"


def test_config_readme_is_made_from_the_schemas():
    assert (ROOT / "config/README.md").read_text() == render(), "run: python -m gensynth.config_docs > config/README.md"


def test_the_readme_points_nowhere_outside_the_repository():
    for path in [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("workflow/report/*.rst")]:
        text = path.read_text()
        assert "../shared" not in text and not re.search(r"\bissue \d+|\bseed 00\d|\b00\d_", text), path


def test_the_workflow_runs_from_any_folder_and_as_a_users_module(tmp_path):
    """`snakemake -s <repo>/Snakefile -d <folder>` and a user's Snakefile that imports gensynth as a module: results,
    logs and benchmarks land in the working directory; scripts, schemas and shipped files come from the workflow."""
    version = {"name": "anywhere", "num_images": 40, "seed": 3, "grid_size": 16, "splits": {"train": 0.5, "val": 0.25, "test": 0.25}}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"modules": ["atoms"], "atoms": {"versions": [version]}}))
    snakemake(tmp_path, "-s", str(ROOT / "Snakefile"), "-d", "run", "--configfile", str(config), "--cores", "1")
    user = tmp_path / "user"
    user.mkdir()
    (user / "config.yaml").write_text(config.read_text())
    (user / "Snakefile").write_text(
        f'configfile: "{ROOT / "config" / "config.yaml"}"\n'
        'configfile: "config.yaml"\n\n\n'
        f'module gensynth:\n    snakefile:\n        "{ROOT / "Snakefile"}"\n    config:\n        config\n\n\n'
        "use rule * from gensynth\n"
    )
    snakemake(user, "--cores", "1")
    made = {}
    for workdir in (tmp_path / "run", user):
        assert (workdir / "logs/atoms/atoms_dataset/anywhere.log").exists() and (workdir / "benchmarks/atoms/atoms_dataset/anywhere.tsv").exists()
        made[workdir.name] = [sha256_file(workdir / "results/atoms/anywhere" / f"{split}.npz") for split in ("train", "val", "test")]
    assert made["run"] == made["user"], "the same config makes the same dataset however the workflow is run"
    assert not (ROOT / "results/atoms/anywhere").exists()
