# Validation and what every module's rules share. Included first by the Snakefile.
import os
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
from gensynth.dagtools import config_flags, rule_resources
from gensynth.errors import GensynthError
from gensynth.modules import MODULES, module_dag
from snakemake.exceptions import WorkflowError

# The whole config is checked before any job: the schemas first (defaults filled in), then each
# module's own checks (keys that must agree, files the config names). Every module's rules exist,
# active or not, for explicit targets, so every module's section is checked.
try:
    validate_config(config)
    for _name in MODULES:
        module_dag(_name).validate(config[_name], config)
except GensynthError as exc:
    # One line, before any job: which key, which value, what was expected.
    raise WorkflowError(f"invalid config: {exc}") from None


CPU_ENV = "../../envs/cpu.yaml"
GPU_ENV = "../../envs/cuda.yaml"
# Passed to every script so the config's device choice reaches the job.
DEVICE = config["device"]


def get_final_output():
    """The final outputs of the modules listed in config["modules"] (the target of the default rule)."""
    return [path for name in config["modules"] for path in module_dag(name).final_outputs(config[name])]
