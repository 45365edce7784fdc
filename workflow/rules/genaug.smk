# genaug: visits (phantom or the user's folder) -> per split, the pipelines of the group's models_5_7 layout
# -> per split and step count, a pool of their images -> per arm and split, the fusion classifier over all
# seeds -> per split, the pipelines' FID -> the comparison and the dose response.
from gensynth.genaug import dag as genaug_dag
from gensynth.genaug import settings as genaug_settings

GENAUG = config["genaug"]


localrules:
    genaug_report,


rule genaug_data:
    input:
        genaug_dag.data_inputs(GENAUG),
    output:
        npz=genaug_dag.DATA["npz"],
        info=genaug_dag.DATA["info"],
        splits=report(genaug_dag.DATA["splits"], caption="../report/genaug_splits.rst", category="genaug", subcategory="data"),
        samples=report(genaug_dag.DATA["samples"], caption="../report/genaug_data.rst", category="genaug", subcategory="data"),
    log:
        "logs/genaug/genaug_data.log",
    benchmark:
        "benchmarks/genaug/genaug_data.tsv"
    conda:
        CPU_ENV
    resources:
        **rule_resources(GENAUG, "genaug_data"),
    params:
        source=genaug_dag.source_flags(GENAUG),
        flags=rule_flags(GENAUG, genaug_settings.GenaugDataSettings),
    shell:
        run_script(
            "scripts/genaug_data.py {params.source} {params.flags} --out {output.npz:q} --out-info {output.info:q} "
            "--out-splits {output.splits:q} --out-samples {output.samples:q} > {log:q} 2>&1"
        )


rule genaug_train_pipeline:
    input:
        dataset=genaug_dag.DATA["npz"],
    output:
        folder=directory(genaug_dag.MODEL["folder"]),
        info=genaug_dag.MODEL["info"],
    log:
        "logs/genaug/genaug_train_pipeline/fold{fold}_{folder}.log",
    benchmark:
        "benchmarks/genaug/genaug_train_pipeline/fold{fold}_{folder}.tsv"
    wildcard_constraints:
        fold=genaug_dag.fold_pattern(GENAUG),
        folder=genaug_dag.FOLDER_PATTERN,
    conda:
        GPU_ENV
    # One thread: the small UNet gains little from a second, and the other core trains another pipeline.
    threads: 1
    resources:
        **rule_resources(GENAUG, "genaug_train_pipeline"),
        gpu=1,
    params:
        flags=rule_flags(GENAUG, genaug_settings.PipelineSettings),
        device=DEVICE,
    shell:
        run_script(
            "scripts/genaug_train_pipeline.py --dataset {input.dataset:q} --fold {wildcards.fold} --folder {wildcards.folder} "
            "{params.flags} --out {output.folder:q} --out-info {output.info:q} "
            "--threads {threads} --device {params.device:q} > {log:q} 2>&1"
        )


rule genaug_pool:
    input:
        dataset=genaug_dag.DATA["npz"],
        models=lambda wildcards: genaug_dag.model_inputs(GENAUG, wildcards.fold, genaug_dag.used_folders(GENAUG)),
    output:
        genaug_dag.POOL,
    log:
        "logs/genaug/genaug_pool/fold{fold}_steps{steps}.log",
    benchmark:
        "benchmarks/genaug/genaug_pool/fold{fold}_steps{steps}.tsv"
    wildcard_constraints:
        fold=genaug_dag.fold_pattern(GENAUG),
        steps=genaug_dag.steps_pattern(GENAUG),
    conda:
        GPU_ENV
    threads: 1
    resources:
        **rule_resources(GENAUG, "genaug_pool"),
        gpu=1,
    params:
        models=lambda wildcards: genaug_dag.models_dir(GENAUG, wildcards.fold),
        flags=genaug_dag.pool_flags(GENAUG),
        device=DEVICE,
    shell:
        run_script(
            "scripts/genaug_pool.py --dataset {input.dataset:q} --fold {wildcards.fold} --models {params.models:q} "
            "--inference-steps {wildcards.steps} {params.flags} --out {output:q} --threads {threads} --device {params.device:q} > {log:q} 2>&1"
        )


rule genaug_classify:
    input:
        dataset=genaug_dag.DATA["npz"],
        images=lambda wildcards: genaug_dag.arm_inputs(GENAUG, wildcards.fold, wildcards.arm),
    output:
        predictions=genaug_dag.RUN["predictions"],
        ckpt=genaug_dag.RUN["ckpt"],
        history=genaug_dag.RUN["history"],
    log:
        "logs/genaug/genaug_classify/{arm}_fold{fold}.log",
    benchmark:
        "benchmarks/genaug/genaug_classify/{arm}_fold{fold}.tsv"
    wildcard_constraints:
        arm=genaug_dag.arm_pattern(GENAUG),
        fold=genaug_dag.fold_pattern(GENAUG),
    conda:
        GPU_ENV
    threads: 1
    resources:
        **rule_resources(GENAUG, "genaug_classify"),
        gpu=1,
    params:
        arm=lambda wildcards: genaug_dag.arm_flags(GENAUG, wildcards.arm),
        images=lambda wildcards: genaug_dag.arm_images_flag(GENAUG, wildcards.fold, wildcards.arm),
        flags=rule_flags(GENAUG, genaug_settings.ClassifySettings),
        device=DEVICE,
    shell:
        run_script(
            "scripts/genaug_classify.py --dataset {input.dataset:q} --fold {wildcards.fold} --arm {wildcards.arm} "
            "{params.arm} {params.images} {params.flags} --out-predictions {output.predictions:q} --out-model {output.ckpt:q} "
            "--out-history {output.history:q} --threads {threads} --device {params.device:q} "
            "> {log:q} 2>&1"
        )


rule genaug_quality:
    input:
        dataset=genaug_dag.DATA["npz"],
        classifier=genaug_dag.RUN["ckpt"].format(arm=genaug_dag.BASELINE, fold="{fold}"),
        models=lambda wildcards: genaug_dag.model_inputs(GENAUG, wildcards.fold),
    output:
        json=genaug_dag.QUALITY["json"],
        samples=report(
            genaug_dag.QUALITY["samples"],
            caption="../report/genaug_samples.rst",
            category="genaug",
            subcategory="pipelines",
            labels={"figure": "samples", "fold": "{fold}"},
        ),
    log:
        "logs/genaug/genaug_quality/fold{fold}.log",
    benchmark:
        "benchmarks/genaug/genaug_quality/fold{fold}.tsv"
    wildcard_constraints:
        fold=genaug_dag.fold_pattern(GENAUG),
    conda:
        GPU_ENV
    threads: 1
    resources:
        **rule_resources(GENAUG, "genaug_quality"),
        gpu=1,
    params:
        models=lambda wildcards: genaug_dag.models_dir(GENAUG, wildcards.fold),
        quality=genaug_dag.quality_flags(GENAUG),
        flags=rule_flags(GENAUG, genaug_settings.QualitySettings),
        device=DEVICE,
    shell:
        run_script(
            "scripts/genaug_quality.py --dataset {input.dataset:q} --fold {wildcards.fold} --classifier {input.classifier:q} "
            "--models {params.models:q} {params.quality} {params.flags} --out {output.json:q} --out-samples {output.samples:q} "
            "--threads {threads} --device {params.device:q} > {log:q} 2>&1"
        )


rule genaug_report:
    input:
        dataset=genaug_dag.DATA["npz"],
        predictions=genaug_dag.every_run_file(GENAUG, "predictions"),
        histories=genaug_dag.every_run_file(GENAUG, "history"),
        quality=genaug_dag.quality_files(GENAUG),
    output:
        table=report(
            genaug_dag.REPORT["table"],
            caption="../report/genaug_table.rst",
            category="genaug",
            subcategory="comparison",
            labels={"table": "arms"},
        ),
        markdown=genaug_dag.REPORT["markdown"],
        figure=report(
            genaug_dag.REPORT["figure"],
            caption="../report/genaug_comparison.rst",
            category="genaug",
            subcategory="comparison",
            labels={"figure": "arms"},
        ),
        dose=report(
            genaug_dag.REPORT["dose"],
            caption="../report/genaug_dose_table.rst",
            category="genaug",
            subcategory="dose response",
            labels={"table": "slopes"},
        ),
        dose_figure=report(
            genaug_dag.REPORT["dose_figure"],
            caption="../report/genaug_dose.rst",
            category="genaug",
            subcategory="dose response",
            labels={"figure": "dose response"},
        ),
        quality=report(
            genaug_dag.REPORT["quality"],
            caption="../report/genaug_quality.rst",
            category="genaug",
            subcategory="pipelines",
            labels={"table": "FID"},
        ),
        json=genaug_dag.REPORT["json"],
    log:
        "logs/genaug/genaug_report.log",
    benchmark:
        "benchmarks/genaug/genaug_report.tsv"
    conda:
        CPU_ENV
    resources:
        **rule_resources(GENAUG, "genaug_report"),
    params:
        runs=genaug_dag.report_run_flags(GENAUG),
        flags=rule_flags(GENAUG, genaug_settings.ReportSettings),
    shell:
        run_script(
            "scripts/genaug_report.py --dataset {input.dataset:q} {params.runs} --quality {input.quality:q} {params.flags} "
            "--out-table {output.table:q} --out-markdown {output.markdown:q} --out-figure {output.figure:q} "
            "--out-dose {output.dose:q} --out-dose-figure {output.dose_figure:q} "
            "--out-quality {output.quality:q} --out-json {output.json:q} > {log:q} 2>&1"
        )
