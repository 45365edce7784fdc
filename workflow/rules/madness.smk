# madness: real data -> LeNet features; per unit (an independent initial model): model_initial, its initial sets
# and probes -> generations g = 0, 1, ... per scenario, w and replicate, each a file that the next one reads ->
# per-chain metrics and Jacobian spectra -> the collapse test (full_synthetic against matched_real), figures.
# The loops are the DAG's longest chains: their training and sampling rules have priority 1, so they start
# first and other jobs fill the cores around them.
from gensynth.madness import dag as madness_dag
from gensynth.madness import settings as madness_settings

MADNESS = config["madness"]


# {w}, the guidance weight, once for every rule: no other module has a {w} wildcard, and every scenario runs the same weights.
# The madness_original_* rules set their own: the w labels of the group's files, as those spell them.
wildcard_constraints:
    w=madness_dag.w_pattern(MADNESS),


localrules:
    madness_detect,
    madness_figures,
    madness_compare,
    madness_original_detect,


rule madness_prepare_data:
    input:
        madness_dag.mnist_paths(MADNESS),
    output:
        npz=madness_dag.DATA["npz"],
        info=madness_dag.DATA["info"],
    log:
        "logs/madness/madness_prepare_data.log",
    benchmark:
        "benchmarks/madness/madness_prepare_data.tsv"
    conda:
        CPU_ENV
    resources:
        **rule_resources(MADNESS, "madness_prepare_data"),
    params:
        source=madness_dag.source_flags(MADNESS),
        flags=rule_flags(MADNESS, madness_settings.PrepareDataSettings),
    shell:
        run_script("scripts/madness_prepare_data.py {params.source} {params.flags} " "--out {output.npz:q} --out-info {output.info:q} > {log:q} 2>&1")


rule madness_train_lenet:
    input:
        data=madness_dag.DATA["npz"],
    output:
        ckpt=madness_dag.LENET["ckpt"],
        info=madness_dag.LENET["info"],
    log:
        "logs/madness/madness_train_lenet.log",
    benchmark:
        "benchmarks/madness/madness_train_lenet.tsv"
    conda:
        CPU_ENV
    threads: 1
    resources:
        **rule_resources(MADNESS, "madness_train_lenet"),
    params:
        flags=rule_flags(MADNESS, madness_settings.LeNetTrainConfig),
    shell:
        run_script(
            "scripts/madness_train_lenet.py --data {input.data:q} {params.flags} --threads {threads} "
            "--out {output.ckpt:q} --out-info {output.info:q} > {log:q} 2>&1"
        )


rule madness_make_probes:
    input:
        data=madness_dag.DATA["npz"],
    output:
        probes=madness_dag.PROBES,
    log:
        "logs/madness/madness_make_probes/unit{unit}.log",
    benchmark:
        "benchmarks/madness/madness_make_probes/unit{unit}.tsv"
    wildcard_constraints:
        unit=madness_dag.unit_pattern(MADNESS),
    conda:
        CPU_ENV
    resources:
        **rule_resources(MADNESS, "madness_make_probes"),
    params:
        flags=rule_flags(MADNESS, madness_settings.MakeProbesSettings),
    shell:
        run_script("scripts/madness_make_probes.py --data {input.data:q} --unit {wildcards.unit} {params.flags} --out {output.probes:q} > {log:q} 2>&1")


rule madness_train_initial:
    input:
        data=madness_dag.DATA["npz"],
    output:
        ckpt=madness_dag.INITIAL["ckpt"],
        info=madness_dag.INITIAL["info"],
    log:
        "logs/madness/madness_train_initial/unit{unit}.log",
    benchmark:
        "benchmarks/madness/madness_train_initial/unit{unit}.tsv"
    wildcard_constraints:
        unit=madness_dag.unit_pattern(MADNESS),
    priority: 1
    conda:
        GPU_ENV
    # One thread: a second one gains little on this small UNet and spins idle when another job holds the other core.
    threads: 1
    resources:
        **rule_resources(MADNESS, "madness_train_initial"),
        gpu=1,
    params:
        flags=rule_flags(MADNESS, madness_settings.TrainInitialSettings),
        device=DEVICE,
    shell:
        run_script(
            "scripts/madness_train_initial.py --data {input.data:q} --unit {wildcards.unit} {params.flags} "
            "--threads {threads} --device {params.device:q} --out {output.ckpt:q} --out-info {output.info:q} > {log:q} 2>&1"
        )


rule madness_sample_initial:
    input:
        model=madness_dag.INITIAL["ckpt"],
    output:
        data=madness_dag.INITIAL_DATA["npz"],
        info=madness_dag.INITIAL_DATA["info"],
    log:
        "logs/madness/madness_sample_initial/unit{unit}_w{w}.log",
    benchmark:
        "benchmarks/madness/madness_sample_initial/unit{unit}_w{w}.tsv"
    wildcard_constraints:
        unit=madness_dag.unit_pattern(MADNESS),
    priority: 1
    conda:
        GPU_ENV
    threads: 1
    resources:
        **rule_resources(MADNESS, "madness_sample_initial"),
        gpu=1,
    params:
        flags=rule_flags(MADNESS, madness_settings.SampleSettings),
        device=DEVICE,
    shell:
        run_script(
            "scripts/madness_sample.py --model {input.model:q} --unit {wildcards.unit} --w {wildcards.w} --tag initial {params.flags} "
            "--threads {threads} --device {params.device:q} --out {output.data:q} --out-info {output.info:q} > {log:q} 2>&1"
        )


rule madness_generation:
    input:
        unpack(madness_dag.previous_generation),
        real=madness_dag.DATA["npz"],
    output:
        ckpt=madness_dag.GENERATION["ckpt"],
        next=madness_dag.GENERATION["next"],
        eval=madness_dag.GENERATION["eval"],
        info=madness_dag.GENERATION["info"],
    log:
        "logs/madness/madness_generation/{scenario}_w{w}_unit{unit}_rep{rep}_g{g}.log",
    benchmark:
        "benchmarks/madness/madness_generation/{scenario}_w{w}_unit{unit}_rep{rep}_g{g}.tsv"
    wildcard_constraints:
        scenario=madness_dag.SCENARIO_PATTERN,
        unit=madness_dag.unit_pattern(MADNESS),
        rep=madness_dag.replicate_pattern(MADNESS),
        g=madness_dag.GENERATION_PATTERN,
    priority: 1
    conda:
        GPU_ENV
    threads: 1
    resources:
        **rule_resources(MADNESS, "madness_generation"),
        gpu=1,
    params:
        previous=madness_dag.previous_flags,
        scenario_flags=madness_dag.generation_flags(MADNESS),
        flags=rule_flags(MADNESS, madness_settings.GenerationSettings),
        device=DEVICE,
    shell:
        run_script(
            "scripts/madness_generation.py --scenario {wildcards.scenario} --generation {wildcards.g} --w {wildcards.w} "
            "--unit {wildcards.unit} --replicate {wildcards.rep} --real {input.real:q} {params.previous} "
            "{params.scenario_flags} {params.flags} --threads {threads} --device {params.device:q} "
            "--out-model {output.ckpt:q} --out-next {output.next:q} --out-eval {output.eval:q} "
            "--out-info {output.info:q} > {log:q} 2>&1"
        )


rule madness_metrics:
    input:
        real=madness_dag.DATA["npz"],
        lenet=madness_dag.LENET["ckpt"],
        samples=madness_dag.chain_generations(MADNESS, madness_dag.GENERATION["eval"]),
    output:
        json=madness_dag.METRICS["json"],
        tsne=report(
            madness_dag.METRICS["tsne"],
            caption="../report/madness_tsne.rst",
            category="madness",
            subcategory="t-SNE per generation",
            labels={"scenario": "{scenario}", "w": "{w}", "unit": "{unit}", "replicate": "{rep}"},
        ),
    log:
        "logs/madness/madness_metrics/{scenario}_w{w}_unit{unit}_rep{rep}.log",
    benchmark:
        "benchmarks/madness/madness_metrics/{scenario}_w{w}_unit{unit}_rep{rep}.tsv"
    wildcard_constraints:
        scenario=madness_dag.SCENARIO_PATTERN,
        unit=madness_dag.unit_pattern(MADNESS),
        rep=madness_dag.replicate_pattern(MADNESS),
    conda:
        CPU_ENV
    threads: 1
    resources:
        **rule_resources(MADNESS, "madness_metrics"),
    params:
        label="{scenario}, unit {unit}, replicate {rep}, w={w}",
        flags=rule_flags(MADNESS, madness_settings.MetricsSettings),
    shell:
        run_script(
            "scripts/madness_metrics.py --real {input.real:q} --lenet {input.lenet:q} --samples {input.samples:q} "
            "--label {params.label:q} {params.flags} --threads {threads} "
            "--out {output.json:q} --out-tsne {output.tsne:q} > {log:q} 2>&1"
        )


rule madness_jacobian:
    input:
        models=madness_dag.chain_generations(MADNESS, madness_dag.GENERATION["ckpt"]),
        probes=madness_dag.PROBES,
    output:
        npz=madness_dag.JACOBIAN,
    log:
        "logs/madness/madness_jacobian/{scenario}_w{w}_unit{unit}_rep{rep}.log",
    benchmark:
        "benchmarks/madness/madness_jacobian/{scenario}_w{w}_unit{unit}_rep{rep}.tsv"
    wildcard_constraints:
        scenario=madness_dag.SCENARIO_PATTERN,
        unit=madness_dag.unit_pattern(MADNESS),
        rep=madness_dag.replicate_pattern(MADNESS),
    conda:
        GPU_ENV
    threads: 1
    resources:
        **rule_resources(MADNESS, "madness_jacobian"),
        gpu=1,
    params:
        flags=rule_flags(MADNESS, madness_settings.JacobianSettings),
        device=DEVICE,
    shell:
        run_script(
            "scripts/madness_jacobian.py --models {input.models:q} --probes {input.probes:q} {params.flags} "
            "--threads {threads} --device {params.device:q} --out {output.npz:q} > {log:q} 2>&1"
        )


rule madness_detect:
    input:
        metrics=madness_dag.every_chain(MADNESS, madness_dag.METRICS["json"], madness_dag.DETECTION_SCENARIOS),
        jacobians=madness_dag.every_chain(MADNESS, madness_dag.JACOBIAN, madness_dag.DETECTION_SCENARIOS),
    output:
        json=madness_dag.DETECTION["json"],
        figure=report(
            madness_dag.DETECTION["figure"],
            caption="../report/madness_signals.rst",
            category="madness",
            subcategory="detection",
            labels={"figure": "signals, full_synthetic against matched_real", "w": "{w}"},
        ),
        error_rates=report(
            madness_dag.ERROR_RATES,
            caption="../report/madness_error_rates.rst",
            category="madness",
            subcategory="detection",
            labels={"figure": "error rates", "w": "{w}"},
        ),
    log:
        "logs/madness/madness_detect/w{w}.log",
    benchmark:
        "benchmarks/madness/madness_detect/w{w}.tsv"
    conda:
        CPU_ENV
    resources:
        **rule_resources(MADNESS, "madness_detect"),
    params:
        scenarios=madness_dag.scenario_flags(MADNESS, madness_dag.DETECTION_SCENARIOS, jacobians=True),
        flags=rule_flags(MADNESS, madness_settings.DetectSettings),
        label="w={w}",
    shell:
        run_script(
            "scripts/madness_detect.py {params.scenarios} {params.flags} --label {params.label:q} "
            "--out-json {output.json:q} --out-figure {output.figure:q} --out-error-rates {output.error_rates:q} > {log:q} 2>&1"
        )


rule madness_figures:
    input:
        metrics=madness_dag.each_chain(MADNESS, madness_dag.METRICS["json"]),
        jacobians=madness_dag.each_chain(MADNESS, madness_dag.JACOBIAN),
    output:
        curves=report(
            madness_dag.CURVES["curves"],
            caption="../report/madness_metrics.rst",
            category="madness",
            subcategory="metrics",
            labels={"scenario": "{scenario}", "w": "{w}"},
        ),
        spectra=report(
            madness_dag.CURVES["spectra"],
            caption="../report/madness_spectra.rst",
            category="madness",
            subcategory="Jacobian spectra",
            labels={"scenario": "{scenario}", "w": "{w}"},
        ),
    log:
        "logs/madness/madness_figures/{scenario}_w{w}.log",
    benchmark:
        "benchmarks/madness/madness_figures/{scenario}_w{w}.tsv"
    wildcard_constraints:
        scenario=madness_dag.SCENARIO_PATTERN,
    conda:
        CPU_ENV
    resources:
        **rule_resources(MADNESS, "madness_figures"),
    params:
        label="{scenario}, w={w}",
    shell:
        run_script(
            "scripts/madness_figures.py --scenario {wildcards.scenario} --metrics {input.metrics:q} "
            "--jacobians {input.jacobians:q} --label {params.label:q} "
            "--out-curves {output.curves:q} --out-spectra {output.spectra:q} > {log:q} 2>&1"
        )


rule madness_compare:
    input:
        madness_dag.every_chain(MADNESS, madness_dag.METRICS["json"], MADNESS["scenarios"]["run"]),
    output:
        table=report(
            madness_dag.COMPARISON["table"],
            caption="../report/madness_summary.rst",
            category="madness",
            subcategory="scenarios compared",
            labels={"table": "metrics per scenario and generation", "w": "{w}"},
        ),
        figure=report(
            madness_dag.COMPARISON["figure"],
            caption="../report/madness_fid_scenarios.rst",
            category="madness",
            subcategory="scenarios compared",
            labels={"figure": "FID per scenario", "w": "{w}"},
        ),
    log:
        "logs/madness/madness_compare/w{w}.log",
    benchmark:
        "benchmarks/madness/madness_compare/w{w}.tsv"
    conda:
        CPU_ENV
    resources:
        **rule_resources(MADNESS, "madness_compare"),
    params:
        scenarios=madness_dag.scenario_flags(MADNESS, MADNESS["scenarios"]["run"], jacobians=False),
        flags=rule_flags(MADNESS, madness_settings.CompareSettings),
        label="w={w}",
    shell:
        run_script(
            "scripts/madness_compare.py {params.scenarios} {params.flags} --label {params.label:q} "
            "--out-table {output.table:q} --out-figure {output.figure:q} > {log:q} 2>&1"
        )


# The group's own DDPM-MNIST checkpoints and sample sets (madness.original; off while models_dir is empty):
# one chain per w, measured with unit 0's probe images, and the same LeNet and real test split as the loops.
rule madness_original_jacobian:
    input:
        models=madness_dag.original_checkpoints(MADNESS),
        real=madness_dag.DATA["npz"],
    output:
        npz=madness_dag.ORIGINAL["jacobian"],
    log:
        "logs/madness/madness_original_jacobian/w{w}.log",
    benchmark:
        "benchmarks/madness/madness_original_jacobian/w{w}.tsv"
    wildcard_constraints:
        w=madness_dag.original_w_pattern(MADNESS),
    conda:
        GPU_ENV
    threads: 1
    resources:
        **rule_resources(MADNESS, "madness_original_jacobian"),
        gpu=1,
    params:
        generations=madness_dag.original_generations(MADNESS, "models"),
        flags=rule_flags(MADNESS, madness_settings.OriginalJacobianSettings),
        device=DEVICE,
    shell:
        run_script(
            "scripts/madness_original_jacobian.py --models {input.models:q} {params.generations} --real {input.real:q} "
            "{params.flags} --threads {threads} --device {params.device:q} --out {output.npz:q} > {log:q} 2>&1"
        )


rule madness_original_metrics:
    input:
        real=madness_dag.DATA["npz"],
        lenet=madness_dag.LENET["ckpt"],
        samples=madness_dag.original_samples(MADNESS, 0),
        labels=madness_dag.original_samples(MADNESS, 1),
    output:
        json=madness_dag.ORIGINAL["metrics"],
    log:
        "logs/madness/madness_original_metrics/w{w}.log",
    benchmark:
        "benchmarks/madness/madness_original_metrics/w{w}.tsv"
    wildcard_constraints:
        w=madness_dag.original_w_pattern(MADNESS),
    conda:
        CPU_ENV
    threads: 1
    resources:
        **rule_resources(MADNESS, "madness_original_metrics"),
    params:
        generations=madness_dag.original_generations(MADNESS, "samples"),
        flags=rule_flags(MADNESS, madness_settings.OriginalMetricsSettings),
    shell:
        run_script(
            "scripts/madness_original_metrics.py --real {input.real:q} --lenet {input.lenet:q} --samples {input.samples:q} "
            "--labels {input.labels:q} {params.generations} {params.flags} --threads {threads} --out {output.json:q} > {log:q} 2>&1"
        )


rule madness_original_detect:
    input:
        unpack(madness_dag.original_detection_inputs(MADNESS)),
    output:
        json=madness_dag.ORIGINAL["detection"],
    log:
        "logs/madness/madness_original_detect/w{w}.log",
    benchmark:
        "benchmarks/madness/madness_original_detect/w{w}.tsv"
    wildcard_constraints:
        w=madness_dag.original_w_pattern(MADNESS),
    conda:
        CPU_ENV
    resources:
        **rule_resources(MADNESS, "madness_original_detect"),
    params:
        metrics=madness_dag.original_metrics_flag(MADNESS),
        flags=rule_flags(MADNESS, madness_settings.OriginalDetectSettings),
        label="the group's checkpoints, w={w}",
    shell:
        run_script(
            "scripts/madness_original_detect.py --jacobian {input.jacobian:q} {params.metrics} {params.flags} "
            "--label {params.label:q} --out {output.json:q} > {log:q} 2>&1"
        )
