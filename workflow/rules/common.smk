# Validation, derived paths and shared helpers. Included first by the Snakefile.
import shlex
import sys
from pathlib import Path

# gensynth is importable here and in every job's script even where the package is not
# installed (a snakemake outside .venv, --software-deployment-method conda).
WORKFLOW_DIR = Path(workflow.basedir) / "workflow"
sys.path.insert(0, str(WORKFLOW_DIR))
# (Snakemake formats the prefix too, hence the doubled braces; its default prefix is kept.)
shell.prefix(f"set -euo pipefail; export PYTHONPATH={shlex.quote(str(WORKFLOW_DIR))}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

from gensynth.config import validate_config
from gensynth.errors import GensynthError
from snakemake.exceptions import WorkflowError

try:
    validate_config(config)
except GensynthError as exc:
    # One line, before any job: which key, which value, what was expected.
    raise WorkflowError(f"invalid config: {exc}") from None


CPU_ENV = "../../envs/cpu.yaml"
GPU_ENV = "../../envs/cuda.yaml"
# Passed to every script so the config's device choice reaches the job.
DEVICE = config["device"]

# Each module registers the files that `rule all` builds when it is listed in config["modules"].
FINAL_OUTPUTS = {}


def module_active(name):
    return name in config["modules"]


def get_final_output():
    return [path for name in config["modules"] for path in FINAL_OUTPUTS.get(name, [])]
