# Validation and what every module's rules share. Included first by the Snakefile.
import os
import shlex
import sys
from pathlib import Path

# The workflow's own folder (this file's grandparent), also where a user's Snakefile imports it as a module.
GENSYNTH_DIR = Path(workflow.current_basedir).parents[1]
# gensynth is importable here and in every job's script even where the package is not
# installed (a snakemake outside .venv, --software-deployment-method conda).
WORKFLOW_DIR = GENSYNTH_DIR / "workflow"
sys.path.insert(0, str(WORKFLOW_DIR))

from gensynth.cluster import check_partitions
from gensynth.codedigest import stamp_command
from gensynth.dagtools import rule_resources, uses_phantom, visible_gpus
from gensynth.errors import GensynthError
from gensynth.modules import module_dag, validate_workflow_config
from gensynth.steps import rule_flags
from gensynth.provenance import CONFIG_ENV, LOG_ENV, RULE_ENV, WILDCARDS_ENV, config_digest, write_config_context
from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

# The whole config is checked before any job (gensynth.modules.validate_workflow_config).
try:
    validate_workflow_config(config, GENSYNTH_DIR)
except GensynthError as exc:
    # One line, before any job: which key, which value, what was expected.
    raise WorkflowError(f"invalid config: {exc}") from None


# Jobs find gensynth on PYTHONPATH, and the validated config (for their provenance) in CONTEXT_DIR.
# (Snakemake formats the prefix too, hence the doubled braces; its default prefix is kept.)
CONTEXT_DIR = Path(".snakemake/gensynth")
CONFIG_DIGEST = config_digest(config)
shell.prefix(
    # OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep instead of spinning on a core another job needs.
    f"set -euo pipefail; export PYTHONPATH={shlex.quote(str(WORKFLOW_DIR))}${{{{PYTHONPATH:+:$PYTHONPATH}}}} OMP_WAIT_POLICY=PASSIVE "
    f"{CONFIG_ENV}={shlex.quote(str(CONTEXT_DIR.resolve() / f'config-{CONFIG_DIGEST[:16]}.json'))}; "
)

CPU_ENV = "../../envs/cpu.yaml"
GPU_ENV = "../../envs/cuda.yaml"
# Jobs run the interpreter Snakemake runs under (whatever PATH the submitting shell has), or with
# --software-deployment-method conda the environment's own python.
CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
PYTHON = "python" if CONDA else shlex.quote(sys.executable)
# The workflow's own scripts: relative in its own folder (the printed commands run by hand there), by their
# full path from any other working directory (snakemake -d, a module import).
SCRIPTS = "scripts" if Path.cwd().resolve() == GENSYNTH_DIR.resolve() else shlex.quote(str(GENSYNTH_DIR / "scripts"))


def run_script(command):
    """A script rule's shell command: ``command`` ("scripts/<name>.py ...") run by PYTHON, with the rule, its
    wildcards (for the provenance of what the job writes) and its log (beside which training jobs write
    their epochs) in the environment. The script replaces the job's shell (exec): a SIGTERM for the job
    reaches the script itself, and the job waits while a training saves its state, instead of ending with
    the shell. Snakemake formats it per job, alike in the command it prints and the one it runs."""
    script = command.removeprefix("scripts/")
    return f"{RULE_ENV}={{rule}} {WILDCARDS_ENV}={{wildcards:q}} {LOG_ENV}={{log:q}} exec {{PYTHON}} {SCRIPTS}/{script}"


# Passed to every script so the config's device choice reaches the job.
DEVICE = config["device"]


def get_final_output():
    """The final outputs of the modules listed in config["modules"] (the target of the default rule)."""
    return [path for name in config["modules"] for path in module_dag(name).final_outputs(config[name])]


RULE_MODULES = {}  # rule name -> its module (config section), filled by annotate_jobs


def annotate_jobs():
    """Called once every module's rules are included. Each job's recorded command ends in the digest of
    its script and the gensynth modules that script imports (gensynth.codedigest): editing that code
    reruns exactly those jobs, "Code has changed since last execution" (Snakemake compares the recorded
    command; the comment is not run). The validated config goes to a file the jobs find through
    $GENSYNTH_CONFIG, with the module of each rule."""
    modules = RULE_MODULES
    for each in workflow.rules:
        modules[each.name] = Path(each.snakefile).stem
        if each.shellcmd and "scripts/" in each.shellcmd:
            # Spelled out as the job runs them, for `snakemake --lint` and the printed command.
            command = each.shellcmd.replace("{rule}", each.name).replace("{PYTHON}", PYTHON)
            each.shellcmd = stamp_command(command, GENSYNTH_DIR, WORKFLOW_DIR)
    write_config_context(CONTEXT_DIR, config, modules)


def retry_declared_attempts():
    """Each rule whose resources declare several attempts (the walltimes its work needs, training resuming
    across them) gets that many retries beyond the profile's. Called when the run starts, as its settings do
    not exist while the Snakefile is parsed."""
    for each in workflow.rules:
        attempts = config.get(RULE_MODULES.get(each.name, ""), {}).get("resources", {}).get(each.name, {}).get("attempts", 1)
        if attempts > 1:
            each.restart_times = attempts - 1 + workflow.execution_settings.retries


onstart:
    retry_declared_attempts()
    # On SLURM, a job that no partition of the profile's partition file holds stops the run before any sbatch.
    if getattr(workflow.executor_settings, "partition_config", None):
        check_partitions(workflow.dag.needrun_jobs(), workflow.executor_settings.partition_config, RULE_MODULES)
    # A local run lets one gpu=1 job at a time use each GPU the machine has (none: they share the CPU cores).
    # `--resources gpu=N` sets the limit yourself; a cluster's executor leaves it to the scheduler.
    if workflow.local_exec and "gpu" not in workflow.global_resources:
        _gpus = visible_gpus()
        if _gpus:
            workflow.register_resource("gpu", _gpus)
            print(f"gensynth: at most {_gpus} job(s) with gpu=1 at once, one per GPU of this machine", file=sys.stderr)
