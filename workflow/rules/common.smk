# Validation, derived paths and shared helpers. Included first by the Snakefile.
import os
import shlex
import sys
from pathlib import Path

# Scripts import gensynth from workflow/ even in an env where the package is not
# installed (--software-deployment-method conda, or a job on a cluster node).
WORKFLOW_DIR = Path(workflow.basedir) / "workflow"
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(WORKFLOW_DIR), os.environ.get("PYTHONPATH")]))
sys.path.insert(0, str(WORKFLOW_DIR))

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
