# madness: real data -> LeNet features, model_initial -> generations g = 0, 1, ... per scenario and w,
# each a file that the next one reads -> per-generation metrics and Jacobian spectra -> detection, figures.
import re

from gensynth.madness import dag
from gensynth.madness.naming import SCENARIOS

MADNESS = config["madness"]
MAD = dag.ROOT
MAD_GEN = dag.LOOP  # one scenario's loop at one w: results/madness/{scenario}/w{w}
MAD_FIG = dag.FIGURES
MAD_DATA = {"npz": f"{MAD}/data/real.npz", "info": f"{MAD}/data/real.json"}
MAD_LENET = {"ckpt": f"{MAD}/feature_extractor/lenet.ckpt", "info": f"{MAD}/feature_extractor/lenet.json"}
MAD_PROBES = f"{MAD}/probes/probes.npz"
MAD_INITIAL = {"ckpt": dag.INITIAL_MODEL, "info": f"{MAD}/initial/model_initial.json"}
MAD_METRICS = f"{MAD_GEN}/metrics_{{g}}_w{{w}}.json"
MAD_JACOBIAN = f"{MAD_GEN}/jacobian_{{g}}_w{{w}}.npz"

MAD_TRAIN_FLAGS = (
    f"--batch-size {MADNESS['train']['batch_size']} --lr {MADNESS['train']['lr']} "
    f"--cond-dropout {MADNESS['train']['cond_dropout']} --ema-decay {MADNESS['train']['ema_decay']}"
)
MAD_SAMPLING_FLAGS = (
    f"--sampler {MADNESS['sampling']['sampler']} --num-inference-steps {MADNESS['sampling']['num_inference_steps']} "
    f"--eta {MADNESS['sampling']['eta']} --sample-batch-size {MADNESS['sampling']['max_c']}"
)
FINAL_OUTPUTS["madness"] = dag.final_outputs(MADNESS)


wildcard_constraints:
    scenario="|".join(SCENARIOS),
    w="|".join(re.escape(w) for w in dag.w_labels(MADNESS)),
    g=r"\d+",


rule madness_prepare_data:
    input:
        lambda wildcards: dag.mnist_inputs(MADNESS),
    output:
        npz=MAD_DATA["npz"],
        info=MAD_DATA["info"],
    log:
        "logs/madness/madness_prepare_data.log",
    params:
        source=MADNESS["data"]["source"],
        # only for mnist_idx ("" would reach the shell as no argument at all)
        mnist_dir=f"--mnist-dir {shlex.quote(MADNESS['data']['mnist_dir'])}" if MADNESS["data"]["source"] == "mnist_idx" else "",
        image_size=MADNESS["data"]["image_size"],
        test_fraction=MADNESS["data"]["test_fraction"],
        max_train=MADNESS["data"]["max_train"],
        max_test=MADNESS["data"]["max_test"],
        seed=MADNESS["seed"],
    conda:
        CPU_ENV
    shell:
        "python scripts/madness_prepare_data.py --source {params.source:q} {params.mnist_dir} "
        "--image-size {params.image_size} --test-fraction {params.test_fraction} --max-train {params.max_train} "
        "--max-test {params.max_test} --seed {params.seed} --out {output.npz:q} --out-info {output.info:q} > {log:q} 2>&1"


rule madness_train_lenet:
    input:
        data=MAD_DATA["npz"],
    output:
        ckpt=MAD_LENET["ckpt"],
        info=MAD_LENET["info"],
    log:
        "logs/madness/madness_train_lenet.log",
    benchmark:
        "benchmarks/madness/madness_train_lenet.tsv"
    threads: 1
    params:
        epochs=MADNESS["feature_extractor"]["epochs"],
        batch_size=MADNESS["feature_extractor"]["batch_size"],
        lr=MADNESS["feature_extractor"]["lr"],
        seed=MADNESS["seed"],
    conda:
        CPU_ENV
    shell:
        "python scripts/madness_train_lenet.py --data {input.data:q} --epochs {params.epochs} "
        "--batch-size {params.batch_size} --lr {params.lr} --seed {params.seed} --threads {threads} "
        "--out {output.ckpt:q} --out-info {output.info:q} > {log:q} 2>&1"


rule madness_make_probes:
    input:
        data=MAD_DATA["npz"],
    output:
        probes=MAD_PROBES,
    log:
        "logs/madness/madness_make_probes.log",
    params:
        num_images=MADNESS["jacobian"]["num_images"],
        timesteps=" ".join(str(t) for t in MADNESS["jacobian"]["timesteps"]),
        n_T=MADNESS["model"]["n_T"],
        beta_start=MADNESS["model"]["beta_start"],
        beta_end=MADNESS["model"]["beta_end"],
        seed=MADNESS["seed"],
    conda:
        CPU_ENV
    shell:
        "python scripts/madness_make_probes.py --data {input.data:q} --num-images {params.num_images} "
        "--timesteps {params.timesteps} --n-T {params.n_T} --beta-start {params.beta_start} "
        "--beta-end {params.beta_end} --seed {params.seed} --out {output.probes:q} > {log:q} 2>&1"


rule madness_train_initial:
    input:
        data=MAD_DATA["npz"],
    output:
        ckpt=MAD_INITIAL["ckpt"],
        info=MAD_INITIAL["info"],
    log:
        "logs/madness/madness_train_initial.log",
    benchmark:
        "benchmarks/madness/madness_train_initial.tsv"
    # One thread: a second one gains little on this small UNet and spins idle when another job holds the other core.
    threads: 1
    resources:
        gpu=1,
        mem_mb=MADNESS["resources"]["mem_mb"],
        runtime=MADNESS["resources"]["runtime_initial"],
    params:
        epochs=MADNESS["initial"]["n_epoch"],
        architecture=MADNESS["model"]["architecture"],
        channels=" ".join(str(c) for c in MADNESS["model"]["block_out_channels"]),
        layers=MADNESS["model"]["layers_per_block"],
        attention="--attention" if MADNESS["model"]["attention"] else "--no-attention",
        n_T=MADNESS["model"]["n_T"],
        beta_start=MADNESS["model"]["beta_start"],
        beta_end=MADNESS["model"]["beta_end"],
        train=MAD_TRAIN_FLAGS,
        seed=MADNESS["seed"],
        device=DEVICE,
    conda:
        GPU_ENV
    shell:
        "python scripts/madness_train_initial.py --data {input.data:q} --epochs {params.epochs} "
        "--architecture {params.architecture} --channels {params.channels} --layers-per-block {params.layers} {params.attention} --n-T {params.n_T} "
        "--beta-start {params.beta_start} --beta-end {params.beta_end} {params.train} --seed {params.seed} "
        "--threads {threads} --device {params.device:q} --out {output.ckpt:q} --out-info {output.info:q} > {log:q} 2>&1"


rule madness_sample_initial:
    input:
        model=MAD_INITIAL["ckpt"],
    output:
        data=dag.INITIAL_DATA,
        info=f"{MAD}/initial/gen_data_initial_w{{w}}.json",
    log:
        "logs/madness/madness_sample_initial/w{w}.log",
    benchmark:
        "benchmarks/madness/madness_sample_initial/w{w}.tsv"
    threads: 1
    resources:
        gpu=1,
        mem_mb=MADNESS["resources"]["mem_mb"],
        runtime=MADNESS["resources"]["runtime_generation"],
    params:
        n=MADNESS["initial"]["N_with_w"],
        sampling=MAD_SAMPLING_FLAGS,
        seed=MADNESS["seed"],
        device=DEVICE,
    conda:
        GPU_ENV
    shell:
        "python scripts/madness_sample.py --model {input.model:q} --n {params.n} --w {wildcards.w} --tag initial "
        "{params.sampling} --seed {params.seed} --threads {threads} --device {params.device:q} "
        "--out {output.data:q} --out-info {output.info:q} > {log:q} 2>&1"


rule madness_generation:
    input:
        unpack(lambda wildcards: dag.previous_generation(wildcards.scenario, wildcards.w, wildcards.g)),
        real=MAD_DATA["npz"],
    output:
        model=f"{MAD_GEN}/model_{{g}}_w{{w}}.ckpt",
        next=f"{MAD_GEN}/gen_data_{{g}}_w{{w}}.npz",
        eval=f"{MAD_GEN}/eval_{{g}}_w{{w}}.npz",
        info=f"{MAD_GEN}/generation_{{g}}_w{{w}}.json",
    log:
        "logs/madness/madness_generation/{scenario}_w{w}_g{g}.log",
    benchmark:
        "benchmarks/madness/madness_generation/{scenario}_w{w}_g{g}.tsv"
    threads: 1
    resources:
        gpu=1,
        mem_mb=MADNESS["resources"]["mem_mb"],
        runtime=MADNESS["resources"]["runtime_generation"],
    params:
        epochs=lambda wildcards: MADNESS["scenarios"][wildcards.scenario]["n_epoch"],
        n_next=lambda wildcards: MADNESS["scenarios"][wildcards.scenario]["N_next"],
        n_real=lambda wildcards: MADNESS["scenarios"][wildcards.scenario].get("n_real", 0),
        synthetic_limit=lambda wildcards: MADNESS["scenarios"][wildcards.scenario]["N_initial"] if int(wildcards.g) == 0 else 0,
        n_eval=MADNESS["N_eval"],
        warm_start="--warm-start" if MADNESS["train"]["warm_start"] else "--no-warm-start",
        train=MAD_TRAIN_FLAGS,
        sampling=MAD_SAMPLING_FLAGS,
        seed=MADNESS["seed"],
        device=DEVICE,
    conda:
        GPU_ENV
    shell:
        "python scripts/madness_generation.py --scenario {wildcards.scenario} --generation {wildcards.g} --w {wildcards.w} "
        "--real {input.real:q} --synthetic {input.synthetic:q} --prev-model {input.prev_model:q} {params.warm_start} "
        "--synthetic-limit {params.synthetic_limit} --epochs {params.epochs} --n-next {params.n_next} --n-eval {params.n_eval} "
        "--n-real {params.n_real} "
        "{params.train} {params.sampling} --seed {params.seed} --threads {threads} --device {params.device:q} "
        "--out-model {output.model:q} --out-next {output.next:q} --out-eval {output.eval:q} "
        "--out-info {output.info:q} > {log:q} 2>&1"


rule madness_metrics:
    input:
        real=MAD_DATA["npz"],
        lenet=MAD_LENET["ckpt"],
        samples=f"{MAD_GEN}/eval_{{g}}_w{{w}}.npz",
    output:
        json=MAD_METRICS,
        tsne=report(
            f"{MAD_GEN}/tsne_{{g}}_w{{w}}.png",
            caption="../report/madness_tsne.rst",
            category="madness",
            subcategory="t-SNE per generation",
            labels={"scenario": "{scenario}", "w": "{w}", "generation": "{g}"},
        ),
    log:
        "logs/madness/madness_metrics/{scenario}_w{w}_g{g}.log",
    benchmark:
        "benchmarks/madness/madness_metrics/{scenario}_w{w}_g{g}.tsv"
    threads: 1
    params:
        label="{scenario}, generation {g}, w={w}",
        min_accuracy=MADNESS["feature_extractor"]["min_accuracy"],
        nearest_k=MADNESS["metrics"]["nearest_k"],
        n_bootstrap=MADNESS["metrics"]["n_bootstrap"],
        tsne_points=MADNESS["metrics"]["tsne_points"],
        tsne_perplexity=MADNESS["metrics"]["tsne_perplexity"],
        seed=MADNESS["seed"],
    conda:
        CPU_ENV
    shell:
        "python scripts/madness_metrics.py --real {input.real:q} --lenet {input.lenet:q} --samples {input.samples:q} "
        "--label {params.label:q} --min-accuracy {params.min_accuracy} --nearest-k {params.nearest_k} "
        "--n-bootstrap {params.n_bootstrap} --tsne-points {params.tsne_points} --tsne-perplexity {params.tsne_perplexity} "
        "--seed {params.seed} --threads {threads} --out {output.json:q} --out-tsne {output.tsne:q} > {log:q} 2>&1"


rule madness_jacobian:
    input:
        model=f"{MAD_GEN}/model_{{g}}_w{{w}}.ckpt",
        probes=MAD_PROBES,
    output:
        npz=MAD_JACOBIAN,
    log:
        "logs/madness/madness_jacobian/{scenario}_w{w}_g{g}.log",
    benchmark:
        "benchmarks/madness/madness_jacobian/{scenario}_w{w}_g{g}.tsv"
    threads: 1
    resources:
        gpu=1,
        mem_mb=MADNESS["resources"]["mem_mb"],
        runtime=MADNESS["resources"]["runtime_jacobian"],
    params:
        method=MADNESS["jacobian"]["method"],
        k=MADNESS["jacobian"]["k"],
        device=DEVICE,
    conda:
        GPU_ENV
    shell:
        "python scripts/madness_jacobian.py --model {input.model:q} --probes {input.probes:q} --method {params.method} "
        "--k {params.k} --threads {threads} --device {params.device:q} --out {output.npz:q} > {log:q} 2>&1"


rule madness_detect:
    input:
        metrics=lambda wildcards: dag.per_generation(MADNESS, MAD_METRICS, wildcards.scenario, wildcards.w),
        jacobians=lambda wildcards: dag.per_generation(MADNESS, MAD_JACOBIAN, wildcards.scenario, wildcards.w),
    output:
        json=f"{MAD_GEN}/detection_w{{w}}.json",
        figure=report(
            f"{MAD_FIG}/{{scenario}}_w{{w}}_signals.png",
            caption="../report/madness_signals.rst",
            category="madness",
            subcategory="detection",
            labels={"scenario": "{scenario}", "w": "{w}"},
        ),
    log:
        "logs/madness/madness_detect/{scenario}_w{w}.log",
    params:
        label="{scenario}, w={w}",
        k=MADNESS["detection"]["k"],
        n_bootstrap=MADNESS["detection"]["n_bootstrap"],
        seed=MADNESS["seed"],
    conda:
        CPU_ENV
    shell:
        "python scripts/madness_detect.py --metrics {input.metrics:q} --jacobians {input.jacobians:q} "
        "--k {params.k} --n-bootstrap {params.n_bootstrap} --label {params.label:q} --seed {params.seed} "
        "--out {output.json:q} --out-figure {output.figure:q} > {log:q} 2>&1"


rule madness_figures:
    input:
        metrics=lambda wildcards: dag.per_generation(MADNESS, MAD_METRICS, wildcards.scenario, wildcards.w),
        jacobians=lambda wildcards: dag.per_generation(MADNESS, MAD_JACOBIAN, wildcards.scenario, wildcards.w),
    output:
        curves=report(
            f"{MAD_FIG}/{{scenario}}_w{{w}}_metrics.png",
            caption="../report/madness_metrics.rst",
            category="madness",
            subcategory="metrics",
            labels={"scenario": "{scenario}", "w": "{w}"},
        ),
        spectra=report(
            f"{MAD_FIG}/{{scenario}}_w{{w}}_spectra.png",
            caption="../report/madness_spectra.rst",
            category="madness",
            subcategory="Jacobian spectra",
            labels={"scenario": "{scenario}", "w": "{w}"},
        ),
    log:
        "logs/madness/madness_figures/{scenario}_w{w}.log",
    params:
        label="{scenario}, w={w}",
    conda:
        CPU_ENV
    shell:
        "python scripts/madness_figures.py --metrics {input.metrics:q} --jacobians {input.jacobians:q} "
        "--label {params.label:q} --out-curves {output.curves:q} --out-spectra {output.spectra:q} > {log:q} 2>&1"


rule madness_compare:
    input:
        lambda wildcards: [
            path for s in MADNESS["scenarios"]["run"] for path in dag.per_generation(MADNESS, MAD_METRICS, s, wildcards.w)
        ],
    output:
        table=report(
            f"{MAD}/summary_w{{w}}.csv",
            caption="../report/madness_summary.rst",
            category="madness",
            subcategory="scenarios compared",
            labels={"table": "metrics per scenario and generation", "w": "{w}"},
        ),
        figure=report(
            f"{MAD_FIG}/fid_scenarios_w{{w}}.png",
            caption="../report/madness_fid_scenarios.rst",
            category="madness",
            subcategory="scenarios compared",
            labels={"figure": "FID per scenario", "w": "{w}"},
        ),
    log:
        "logs/madness/madness_compare/w{w}.log",
    params:
        scenarios=lambda wildcards: dag.compare_flags(MADNESS, MAD_METRICS, wildcards.w),
        label="w={w}",
    conda:
        CPU_ENV
    shell:
        "python scripts/madness_compare.py {params.scenarios} --label {params.label:q} "
        "--out-table {output.table:q} --out-figure {output.figure:q} > {log:q} 2>&1"
