# atoms: versioned datasets of simulated Z-contrast lattice images (issue 4).
# Each configured version is one job of scripts/generate_dataset.py into results/atoms/<name>/.
# The version name is a config value, not the date, so a rerun on another day rebuilds nothing.
import re

ATOMS_FILES = ["train.npz", "val.npz", "test.npz", "metadata.json", "validation_report.png"]
ATOMS_VERSIONS = {}
for _index, _version in enumerate(config["atoms"]["versions"]):
    _key = f"config key 'atoms.versions[{_index}]"
    if _version["name"] in ATOMS_VERSIONS:
        raise WorkflowError(f"invalid config: {_key}.name' = {_version['name']}: expected a name no other version has")
    _total = sum(_version["splits"].values())
    if abs(_total - 1.0) > 1e-6:
        raise WorkflowError(f"invalid config: {_key}.splits' = {_version['splits']}: expected fractions summing to 1, not {_total:g}")
    ATOMS_VERSIONS[_version["name"]] = _version

FINAL_OUTPUTS["atoms"] = expand("results/atoms/{version}/{file}", version=list(ATOMS_VERSIONS), file=ATOMS_FILES)


rule atoms_dataset:
    wildcard_constraints:
        version="|".join(re.escape(name) for name in ATOMS_VERSIONS),
    output:
        train="results/atoms/{version}/train.npz",
        val="results/atoms/{version}/val.npz",
        test="results/atoms/{version}/test.npz",
        metadata="results/atoms/{version}/metadata.json",
        report=report(
            "results/atoms/{version}/validation_report.png",
            caption="../report/atoms_validation_report.rst",
            category="atoms",
            subcategory="{version}",
        ),
    log:
        "logs/atoms/atoms_dataset/{version}.log",
    benchmark:
        "benchmarks/atoms/atoms_dataset/{version}.tsv"
    threads: 2
    resources:
        mem_mb=1000,
        runtime=lambda wildcards: 5 + ATOMS_VERSIONS[wildcards.version]["num_images"] // 200_000,
    params:
        output_dir=lambda wildcards, output: os.path.dirname(output.metadata),
        num_images=lambda wildcards: ATOMS_VERSIONS[wildcards.version]["num_images"],
        seed=lambda wildcards: ATOMS_VERSIONS[wildcards.version]["seed"],
        grid_size=lambda wildcards: ATOMS_VERSIONS[wildcards.version]["grid_size"],
        train=lambda wildcards: ATOMS_VERSIONS[wildcards.version]["splits"]["train"],
        val=lambda wildcards: ATOMS_VERSIONS[wildcards.version]["splits"]["val"],
        test=lambda wildcards: ATOMS_VERSIONS[wildcards.version]["splits"]["test"],
        generator=lambda wildcards: ATOMS_VERSIONS[wildcards.version]["generator"],
    conda:
        CPU_ENV
    shell:
        "python scripts/generate_dataset.py --yes --num-images {params.num_images} --seed {params.seed} "
        "--grid-size {params.grid_size} --train-fraction {params.train} --val-fraction {params.val} "
        "--test-fraction {params.test} --generator {params.generator:q} --output-dir {params.output_dir:q} "
        "--threads {threads} > {log:q} 2>&1"
