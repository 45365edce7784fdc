# replicas: slices (phantom or the user's) -> conditional diffusion model -> one replica per job -> QA.
# A replica is the test distribution (test CSV) generated anew: results/replicas/replica_XXX.npz.
from gensynth.replicas import dag as replicas_dag
from gensynth.replicas import settings as replicas_settings

REPLICAS = config["replicas"]
REPLICAS_DATA = replicas_dag.data_paths(REPLICAS)


if uses_phantom(REPLICAS):

    rule replicas_phantom:
        output:
            train=REPLICAS_DATA["train"],
            test=REPLICAS_DATA["test"],
            csv=REPLICAS_DATA["csv"],
        log:
            "logs/replicas/replicas_phantom.log",
        benchmark:
            "benchmarks/replicas/replicas_phantom.tsv"
        conda:
            CPU_ENV
        resources:
            **rule_resources(REPLICAS, "replicas_phantom"),
        params:
            flags=rule_flags(REPLICAS, replicas_settings.PhantomConfig),
        shell:
            run_script(
                "scripts/make_replica_data.py phantom {params.flags} "
                "--train {output.train:q} --test {output.test:q} --test-csv {output.csv:q} > {log:q} 2>&1"
            )


if replicas_dag.counts_test_csv(REPLICAS):

    rule replicas_test_distribution:
        input:
            test=REPLICAS_DATA["test"],
        output:
            csv=REPLICAS_DATA["csv"],
        log:
            "logs/replicas/replicas_test_distribution.log",
        benchmark:
            "benchmarks/replicas/replicas_test_distribution.tsv"
        conda:
            CPU_ENV
        resources:
            **rule_resources(REPLICAS, "replicas_test_distribution"),
        params:
            flags=rule_flags(REPLICAS, replicas_settings.ZBins),
        shell:
            run_script("scripts/make_replica_data.py distribution --test {input.test:q} {params.flags} " "--test-csv {output.csv:q} > {log:q} 2>&1")


rule replicas_train:
    input:
        data=REPLICAS_DATA["train"],
    output:
        ckpt=replicas_dag.MODEL["ckpt"],
        config=replicas_dag.MODEL["config"],
        history=replicas_dag.MODEL["history"],
    log:
        "logs/replicas/replicas_train.log",
    benchmark:
        "benchmarks/replicas/replicas_train.tsv"
    conda:
        GPU_ENV
    # One thread trains the small CPU default fastest per core and leaves the other core free;
    # on a GPU the threads hardly matter (the data are tensors in memory).
    threads: 1
    resources:
        **rule_resources(REPLICAS, "replicas_train"),
        gpu=1,
    params:
        flags=rule_flags(REPLICAS, replicas_settings.TrainReplicaModelSettings),
        device=DEVICE,
    shell:
        run_script(
            "scripts/train_replica_model.py --data {input.data:q} {params.flags} "
            "--out {output.ckpt:q} --out-config {output.config:q} --out-history {output.history:q} "
            "--threads {threads} --device {params.device:q} > {log:q} 2>&1"
        )


rule replicas_generate:
    input:
        ckpt=replicas_dag.MODEL["ckpt"],
        config=replicas_dag.MODEL["config"],
        csv=REPLICAS_DATA["csv"],
    output:
        npz=replicas_dag.REPLICA["npz"],
        meta=replicas_dag.REPLICA["meta"],
    log:
        "logs/replicas/replicas_generate/{replica_id}.log",
    benchmark:
        "benchmarks/replicas/replicas_generate/{replica_id}.tsv"
    wildcard_constraints:
        replica_id=replicas_dag.replica_id_pattern(REPLICAS),
    conda:
        GPU_ENV
    threads: 1
    resources:
        **rule_resources(REPLICAS, "replicas_generate"),
        gpu=1,
    params:
        flags=rule_flags(REPLICAS, replicas_settings.GenerateReplicaSettings),
        device=DEVICE,
    shell:
        run_script(
            "scripts/generate_replicas.py --checkpoint {input.ckpt:q} --config {input.config:q} "
            "--test-csv {input.csv:q} --replica-id {wildcards.replica_id} --out {output.npz:q} --out-meta {output.meta:q} {params.flags} "
            "--threads {threads} --device {params.device:q} > {log:q} 2>&1"
        )


rule replicas_qa:
    input:
        replicas=replicas_dag.replicas(REPLICAS),
        real=REPLICAS_DATA["test"],
        csv=REPLICAS_DATA["csv"],
        history=replicas_dag.MODEL["history"],
    output:
        json=replicas_dag.QA["json"],
        table=report(replicas_dag.QA["table"], caption="../report/replicas_table.rst", category="replicas"),
        summary=report(replicas_dag.QA["summary"], caption="../report/replicas_summary.rst", category="replicas"),
        samples=report(replicas_dag.QA["samples"], caption="../report/replicas_samples.rst", category="replicas"),
    log:
        "logs/replicas/replicas_qa.log",
    benchmark:
        "benchmarks/replicas/replicas_qa.tsv"
    conda:
        CPU_ENV
    resources:
        **rule_resources(REPLICAS, "replicas_qa"),
    params:
        flags=rule_flags(REPLICAS, replicas_settings.ReplicasQASettings),
    shell:
        run_script(
            "scripts/replicas_qa.py --replicas {input.replicas:q} --real {input.real:q} "
            "--test-csv {input.csv:q} --history {input.history:q} {params.flags} "
            "--out-json {output.json:q} --out-table {output.table:q} --out-summary {output.summary:q} "
            "--out-samples {output.samples:q} > {log:q} 2>&1"
        )
