# denoise: UV/Vis spectra (phantom or the user's) -> the baselines tuned on the training data, and MambaUV trained
# with Noise2Noise (and on clean targets, for comparison) once per training seed -> the validation panel's QA with
# its four gates, which promotes the checkpoint ranked first on validation -> the full manifest denoised in shards
# with it -> ROI figures (results/denoise/). Snakemake fills a job's wildcards into the path patterns in params
# ({arm}, {seed}, {manifest}); the functions of the wildcards get the section with partial.
from functools import partial

from gensynth.denoise import dag as denoise_dag
from gensynth.denoise import settings as denoise_settings

DENOISE = config["denoise"]
DENOISE_DATA = denoise_dag.data_paths(DENOISE)


localrules:
    denoise_merge,


if uses_phantom(DENOISE):

    rule denoise_phantom:
        output:
            root=directory(denoise_dag.PHANTOM["root"]),
            clean=directory(denoise_dag.PHANTOM["clean"]),
            grid=denoise_dag.PHANTOM["grid"],
            manifest_full=denoise_dag.PHANTOM["manifest_full"],
            manifest_train=denoise_dag.PHANTOM["manifest_train"],
            manifest_val=denoise_dag.PHANTOM["manifest_val"],
            panel=denoise_dag.PHANTOM["panel"],
            dose_features=denoise_dag.PHANTOM["dose_features"],
            dose_stats=denoise_dag.PHANTOM["dose_stats"],
            summary=denoise_dag.PHANTOM["summary"],
        log:
            "logs/denoise/denoise_phantom.log",
        benchmark:
            "benchmarks/denoise/denoise_phantom.tsv"
        conda:
            CPU_ENV
        resources:
            **rule_resources(DENOISE, "denoise_phantom"),
        params:
            flags=rule_flags(DENOISE, denoise_settings.PhantomCorpus),
            out_dir=denoise_dag.phantom_folder,
        shell:
            run_script("scripts/make_denoise_data.py corpus --out-dir {params.out_dir:q} {params.flags} > {log:q} 2>&1")

    rule denoise_phantom_staging:
        output:
            root=directory(denoise_dag.PHANTOM_STAGING["root"]),
            manifest=denoise_dag.PHANTOM_STAGING["manifest"],
            summary=denoise_dag.PHANTOM_STAGING["summary"],
        log:
            "logs/denoise/denoise_phantom_staging.log",
        benchmark:
            "benchmarks/denoise/denoise_phantom_staging.tsv"
        conda:
            CPU_ENV
        resources:
            **rule_resources(DENOISE, "denoise_phantom_staging"),
        params:
            flags=rule_flags(DENOISE, denoise_settings.PhantomStaging),
            out_dir=denoise_dag.staging_folder,
        shell:
            run_script("scripts/make_denoise_data.py staging --out-dir {params.out_dir:q} {params.flags} > {log:q} 2>&1")


rule denoise_tune_baselines:
    input:
        manifest=DENOISE_DATA["manifest_train"],
        root=DENOISE_DATA["root"],
        grid=DENOISE_DATA["grid"],
    output:
        baselines=denoise_dag.BASELINES["baselines"],
        pca=denoise_dag.BASELINES["pca"],
    log:
        "logs/denoise/denoise_tune_baselines.log",
    benchmark:
        "benchmarks/denoise/denoise_tune_baselines.tsv"
    conda:
        CPU_ENV
    resources:
        **rule_resources(DENOISE, "denoise_tune_baselines"),
    params:
        flags=rule_flags(DENOISE, denoise_settings.BaselineCandidates),
    shell:
        run_script(
            "scripts/tune_baselines.py --train-manifest {input.manifest:q} --root-dir {input.root:q} "
            "--wavelength-grid {input.grid:q} {params.flags} --out {output.baselines:q} --pca-out {output.pca:q} > {log:q} 2>&1"
        )


rule denoise_train:
    input:
        unpack(partial(denoise_dag.train_inputs, DENOISE)),
    output:
        checkpoint=denoise_dag.CHECKPOINT,
        metrics=denoise_dag.TRAIN["metrics"],
        audit=denoise_dag.TRAIN["audit"],
        summary=denoise_dag.TRAIN["summary"],
    log:
        "logs/denoise/denoise_train/{arm}_seed_{seed}.log",
    benchmark:
        "benchmarks/denoise/denoise_train/{arm}_seed_{seed}.tsv"
    wildcard_constraints:
        arm=denoise_dag.arm_pattern(DENOISE),
        seed=denoise_dag.seed_pattern(DENOISE),
    conda:
        GPU_ENV
    # One thread each: two jobs train side by side on two cores (a second thread gains little on the small model).
    threads: 1
    resources:
        **rule_resources(DENOISE, "denoise_train"),
        gpu=1,
    params:
        flags=rule_flags(DENOISE, denoise_settings.TrainDenoiserSettings),
        arm_flags=partial(denoise_dag.train_flags, DENOISE),
        log_dir=denoise_dag.TRAIN_LOG_DIR,
        checkpoint_dir=denoise_dag.CHECKPOINT_DIR,
        device=DEVICE,
    shell:
        run_script(
            "scripts/train_denoiser.py --train_dir {input.root:q} --train_manifest {input.manifest_train:q} "
            "--val_dir {input.root:q} --val_manifest {input.manifest_val:q} --wavelength_grid {input.grid:q} "
            "--dose_features_csv {input.dose_features:q} --dose_stats_json {input.dose_stats:q} {params.arm_flags} {params.flags} "
            "--log_dir {params.log_dir:q} --checkpoint_dir {params.checkpoint_dir:q} --threads {threads} --device {params.device:q} "
            "> {log:q} 2>&1"
        )


rule denoise_shard:
    input:
        unpack(partial(denoise_dag.manifest_and_root, DENOISE)),
        checkpoint=denoise_dag.PROMOTED_CHECKPOINT,
        dose_features=DENOISE_DATA["dose_features"],
        dose_stats=DENOISE_DATA["dose_stats"],
    output:
        done=temp(denoise_dag.SHARD),
    log:
        "logs/denoise/denoise_shard/{manifest}_{shard}.log",
    benchmark:
        "benchmarks/denoise/denoise_shard/{manifest}_{shard}.tsv"
    wildcard_constraints:
        manifest=denoise_dag.manifest_pattern(DENOISE),
        shard=denoise_dag.shard_pattern(DENOISE),
    conda:
        GPU_ENV
    threads: 1
    resources:
        **rule_resources(DENOISE, "denoise_shard"),
        gpu=1,
    params:
        flags=rule_flags(DENOISE, denoise_settings.InferSettings),
        output_root=denoise_dag.DENOISED_DIR,
        num_shards=DENOISE["infer"]["shards"],
        device=DEVICE,
    shell:
        run_script(
            "scripts/run_denoise_from_manifest.py --manifest {input.manifest:q} --root-dir {input.root:q} "
            "--checkpoint {input.checkpoint:q} --output-root {params.output_root:q} --dose-features-csv {input.dose_features:q} "
            "--dose-stats-json {input.dose_stats:q} {params.flags} --shard {wildcards.shard} --num-shards {params.num_shards} "
            "--done-json {output.done:q} --threads {threads} --device {params.device:q} > {log:q} 2>&1"
        )


rule denoise_merge:
    input:
        manifest=partial(denoise_dag.merged_manifest, DENOISE),
        shards=partial(denoise_dag.shards, DENOISE),
    output:
        index=denoise_dag.MERGED["index"],
        summary=denoise_dag.MERGED["summary"],
    log:
        "logs/denoise/denoise_merge/{manifest}.log",
    benchmark:
        "benchmarks/denoise/denoise_merge/{manifest}.tsv"
    wildcard_constraints:
        manifest=denoise_dag.manifest_pattern(DENOISE),
    conda:
        CPU_ENV
    resources:
        **rule_resources(DENOISE, "denoise_merge"),
    params:
        output_root=denoise_dag.DENOISED_DIR,
    shell:
        run_script(
            "scripts/merge_denoise_shards.py --manifest {input.manifest:q} --output-root {params.output_root:q} "
            "--shards {input.shards:q} --index {output.index:q} --summary {output.summary:q} > {log:q} 2>&1"
        )


rule denoise_panel_qa:
    input:
        **denoise_dag.qa_inputs(DENOISE),
    output:
        summary=denoise_dag.QA["summary"],
        methods=report(denoise_dag.QA["methods"], caption="../report/denoise_methods.rst", category="denoise"),
        psnr_figure=report(denoise_dag.QA["psnr_figure"], caption="../report/denoise_psnr.rst", category="denoise"),
        promoted=denoise_dag.PROMOTED_CHECKPOINT,
    log:
        "logs/denoise/denoise_panel_qa.log",
    benchmark:
        "benchmarks/denoise/denoise_panel_qa.tsv"
    conda:
        GPU_ENV
    threads: 1
    resources:
        **rule_resources(DENOISE, "denoise_panel_qa"),
        gpu=1,
    params:
        flags=rule_flags(DENOISE, denoise_settings.PanelQASettings),
        qa_flags=denoise_dag.qa_flags(DENOISE),
        output_dir=denoise_dag.panel_eval_folder,
        device=DEVICE,
    shell:
        run_script(
            "scripts/evaluate_validation_panel.py --checkpoints {input.checkpoints:q} --manifest {input.panel:q} "
            "--root-dir {input.root:q} --baseline-dir {input.root:q} --metadata {input.dose_features:q} --wavelength-grid {input.grid:q} "
            "--output-dir {params.output_dir:q} --baselines {input.baselines:q} --promote-to {output.promoted:q} "
            "{params.qa_flags} {params.flags} --threads {threads} --device {params.device:q} > {log:q} 2>&1"
        )


rule denoise_plot_roi:
    input:
        panel=DENOISE_DATA["panel"],
        root=DENOISE_DATA["root"],
        summary=denoise_dag.QA["summary"],
        grid=DENOISE_DATA["grid"],
        roi=DENOISE["qa"]["roi_windows"],
    output:
        figure=report(denoise_dag.ROI_FIGURE, caption="../report/denoise_roi_windows.rst", category="denoise"),
    log:
        "logs/denoise/denoise_plot_roi.log",
    benchmark:
        "benchmarks/denoise/denoise_plot_roi.tsv"
    conda:
        CPU_ENV
    resources:
        **rule_resources(DENOISE, "denoise_plot_roi"),
    params:
        flags=rule_flags(DENOISE, denoise_settings.RoiWindows),
        clean=denoise_dag.clean_flag(DENOISE),
    shell:
        run_script(
            "scripts/plot_roi_windows.py --manifest {input.panel:q} --root-dir {input.root:q} --qa-summary {input.summary:q} "
            "{params.clean} --wavelength-grid {input.grid:q} {params.flags} --out {output.figure:q} > {log:q} 2>&1"
        )
