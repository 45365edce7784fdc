# gensynth: every artifact of the group's generative-model research as a file with dependencies.
# The Snakefile only wires; decisions live in workflow/rules/common.smk and the module rule files.
import os

from snakemake.utils import min_version

min_version("9.0")


# The embedded default, beside this Snakefile wherever the working directory is (snakemake -d, a module
# import); --configfile and --config override it key by key.
configfile: os.path.join(workflow.current_basedir, "config", "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/atoms.smk"
include: "workflow/rules/replicas.smk"
include: "workflow/rules/madness.smk"
include: "workflow/rules/denoise.smk"
include: "workflow/rules/genaug.smk"


annotate_jobs()


rule all:
    default_target: True
    input:
        get_final_output(),
