# atoms: versioned datasets of simulated Z-contrast lattice images.
# Each configured version is one job of scripts/generate_dataset.py into results/atoms/<name>/;
# the version name is a config value, not the date, so a rerun on another day rebuilds nothing.
from gensynth.atoms import dag as atoms_dag
from gensynth.atoms import settings as atoms_settings

ATOMS = config["atoms"]


rule atoms_dataset:
    output:
        train=atoms_dag.path("train"),
        val=atoms_dag.path("val"),
        test=atoms_dag.path("test"),
        metadata=atoms_dag.path("metadata"),
        report=report(
            atoms_dag.path("report"),
            caption="../report/atoms_validation_report.rst",
            category="atoms",
            subcategory="{version}",
        ),
    log:
        "logs/atoms/atoms_dataset/{version}.log",
    benchmark:
        "benchmarks/atoms/atoms_dataset/{version}.tsv"
    wildcard_constraints:
        version=atoms_dag.version_pattern(ATOMS),
    conda:
        CPU_ENV
    threads: 2
    resources:
        **rule_resources(ATOMS, "atoms_dataset"),
    params:
        num_images=lambda wildcards: atoms_dag.versions(ATOMS)[wildcards.version]["num_images"],
        flags=lambda wildcards: rule_flags(atoms_dag.version_section(ATOMS, wildcards.version), atoms_settings.GenerateDatasetSettings),
        # The script names the files in it as the outputs are named (gensynth.atoms.naming).
        output_dir=lambda wildcards: atoms_dag.version_dir(wildcards.version),
    shell:
        run_script(
            "scripts/generate_dataset.py --yes --num-images {params.num_images} {params.flags} --output-dir {params.output_dir:q} "
            "--threads {threads} > {log:q} 2>&1"
        )
