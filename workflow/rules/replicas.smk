# replicas: slices (phantom or the user's) -> conditional diffusion model -> one replica per job -> QA.
# A replica is the test distribution (test CSV) generated anew: results/replicas/replica_XXX.npz.
import os

REPLICAS = config["replicas"]
REPLICAS_DIR = "results/replicas"
REPLICA_IDS = [f"{i:03d}" for i in range(REPLICAS["sample"]["n_replicas"])]


# Training slices, real test slices and test CSV: the phantom's, or the user's files.
if REPLICAS["data"]["source"] == "phantom":
    REPLICAS_DATA = {
        "train": f"{REPLICAS_DIR}/data/train.npz",
        "test": f"{REPLICAS_DIR}/data/test.npz",
        "csv": f"{REPLICAS_DIR}/data/test_distribution.csv",
    }
else:
    for key in ("train_npz", "test_npz"):
        if not REPLICAS["data"][key]:
            raise WorkflowError(f"invalid config: config key 'replicas.data.{key}' = '': expected a path when replicas.data.source is files")
    REPLICAS_DATA = {
        "train": REPLICAS["data"]["train_npz"],
        "test": REPLICAS["data"]["test_npz"],
        "csv": REPLICAS["data"]["test_csv"] or f"{REPLICAS_DIR}/data/test_distribution.csv",
    }
REPLICAS_MODEL = {
    "ckpt": f"{REPLICAS_DIR}/model/best.ckpt",
    "config": f"{REPLICAS_DIR}/model/config.yaml",
    "history": f"{REPLICAS_DIR}/model/history.json",
}
REPLICAS_QA = {
    "json": f"{REPLICAS_DIR}/qa/qa.json",
    "table": f"{REPLICAS_DIR}/qa/replicas.tsv",
    "summary": f"{REPLICAS_DIR}/qa/summary.png",
    "samples": f"{REPLICAS_DIR}/qa/samples.png",
}
FINAL_OUTPUTS["replicas"] = list(REPLICAS_QA.values())


wildcard_constraints:
    replica_id="|".join(REPLICA_IDS),


if REPLICAS["data"]["source"] == "phantom":

    rule make_replica_phantom:
        output:
            train=REPLICAS_DATA["train"],
            test=REPLICAS_DATA["test"],
            csv=REPLICAS_DATA["csv"],
        log:
            "logs/replicas/make_replica_phantom.log",
        params:
            image_size=REPLICAS["phantom"]["image_size"],
            z_bins=REPLICAS["z_bins"],
            subjects_control=REPLICAS["phantom"]["subjects_control"],
            subjects_epilepsy=REPLICAS["phantom"]["subjects_epilepsy"],
            slices=REPLICAS["phantom"]["slices_per_subject"],
            test_fraction=REPLICAS["phantom"]["test_fraction"],
            lesions_control=REPLICAS["phantom"]["lesions_control"],
            lesions_epilepsy=REPLICAS["phantom"]["lesions_epilepsy"],
            min_lesion_fraction=REPLICAS["phantom"]["min_lesion_fraction"],
            seed=REPLICAS["phantom"]["seed"],
        conda:
            CPU_ENV
        shell:
            "python scripts/make_replica_data.py phantom --image-size {params.image_size} --z-bins {params.z_bins} "
            "--subjects-control {params.subjects_control} --subjects-epilepsy {params.subjects_epilepsy} "
            "--slices-per-subject {params.slices} --test-fraction {params.test_fraction} "
            "--lesions-control {params.lesions_control} --lesions-epilepsy {params.lesions_epilepsy} "
            "--min-lesion-fraction {params.min_lesion_fraction} --seed {params.seed} "
            "--train {output.train:q} --test {output.test:q} --test-csv {output.csv:q} > {log:q} 2>&1"

elif not REPLICAS["data"]["test_csv"]:

    rule replica_test_distribution:
        input:
            test=REPLICAS_DATA["test"],
        output:
            csv=REPLICAS_DATA["csv"],
        log:
            "logs/replicas/replica_test_distribution.log",
        params:
            z_bins=REPLICAS["z_bins"],
        conda:
            CPU_ENV
        shell:
            "python scripts/make_replica_data.py distribution --test {input.test:q} --z-bins {params.z_bins} "
            "--test-csv {output.csv:q} > {log:q} 2>&1"


rule train_replica_model:
    input:
        data=REPLICAS_DATA["train"],
    output:
        ckpt=REPLICAS_MODEL["ckpt"],
        config=REPLICAS_MODEL["config"],
        history=REPLICAS_MODEL["history"],
    log:
        "logs/replicas/train_replica_model.log",
    benchmark:
        "benchmarks/replicas/train_replica_model.tsv"
    # One thread trains the small CPU default fastest per core and leaves the other core free;
    # on a GPU the threads hardly matter (the data are tensors in memory).
    threads: 1
    resources:
        gpu=1,
        mem_mb=REPLICAS["train"]["mem_mb"],
        runtime=REPLICAS["train"]["runtime"],
    params:
        resume_dir=f"{REPLICAS_DIR}/model/resume",
        z_bins=REPLICAS["z_bins"],
        channels=" ".join(str(c) for c in REPLICAS["model"]["block_out_channels"]),
        layers=REPLICAS["model"]["layers_per_block"],
        attention="--attention" if REPLICAS["model"]["attention"] else "--no-attention",
        epochs=REPLICAS["train"]["epochs"],
        batch_size=REPLICAS["train"]["batch_size"],
        lr=REPLICAS["train"]["lr"],
        cond_dropout=REPLICAS["train"]["cond_dropout"],
        ema_decay=REPLICAS["train"]["ema_decay"],
        val_fraction=REPLICAS["train"]["val_fraction"],
        timesteps=REPLICAS["train"]["num_train_timesteps"],
        beta_schedule=REPLICAS["train"]["beta_schedule"],
        prediction_type=REPLICAS["train"]["prediction_type"],
        seed=REPLICAS["train"]["seed"],
        device=DEVICE,
    conda:
        GPU_ENV
    shell:
        "python scripts/train_replica_model.py --data {input.data:q} --z-bins {params.z_bins} "
        "--out {output.ckpt:q} --config-out {output.config:q} --history {output.history:q} "
        "--resume-dir {params.resume_dir:q} --block-out-channels {params.channels} "
        "--layers-per-block {params.layers} {params.attention} --epochs {params.epochs} "
        "--batch-size {params.batch_size} --lr {params.lr} --cond-dropout {params.cond_dropout} "
        "--ema-decay {params.ema_decay} --val-fraction {params.val_fraction} "
        "--num-train-timesteps {params.timesteps} --beta-schedule {params.beta_schedule:q} "
        "--prediction-type {params.prediction_type:q} --seed {params.seed} "
        "--threads {threads} --device {params.device:q} > {log:q} 2>&1"


rule generate_replica:
    input:
        ckpt=REPLICAS_MODEL["ckpt"],
        config=REPLICAS_MODEL["config"],
        csv=REPLICAS_DATA["csv"],
    output:
        npz=f"{REPLICAS_DIR}/replica_{{replica_id}}.npz",
        meta=f"{REPLICAS_DIR}/replica_{{replica_id}}_meta.json",
    log:
        "logs/replicas/generate_replica/{replica_id}.log",
    benchmark:
        "benchmarks/replicas/generate_replica/{replica_id}.tsv"
    threads: 1
    resources:
        gpu=1,
        mem_mb=REPLICAS["sample"]["mem_mb"],
        runtime=REPLICAS["sample"]["runtime"],
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.npz),
        seed_base=REPLICAS["sample"]["seed_base"],
        steps=REPLICAS["sample"]["num_inference_steps"],
        eta=REPLICAS["sample"]["eta"],
        guidance_scale=REPLICAS["sample"]["guidance_scale"],
        batch_size=REPLICAS["sample"]["batch_size"],
        ema="--use-ema" if REPLICAS["sample"]["use_ema"] else "--no-use-ema",
        device=DEVICE,
    conda:
        GPU_ENV
    shell:
        "python scripts/generate_replicas.py --checkpoint {input.ckpt:q} --config {input.config:q} "
        "--test-csv {input.csv:q} --replica-id {wildcards.replica_id} --out-dir {params.out_dir:q} "
        "--seed-base {params.seed_base} --num-inference-steps {params.steps} --eta {params.eta} "
        "--guidance-scale {params.guidance_scale} --batch-size {params.batch_size} {params.ema} "
        "--threads {threads} --device {params.device:q} > {log:q} 2>&1"


rule replicas_qa:
    input:
        replicas=expand(f"{REPLICAS_DIR}/replica_{{replica_id}}.npz", replica_id=REPLICA_IDS),
        real=REPLICAS_DATA["test"],
        csv=REPLICAS_DATA["csv"],
        history=REPLICAS_MODEL["history"],
    output:
        json=REPLICAS_QA["json"],
        table=report(REPLICAS_QA["table"], caption="../report/replicas_table.rst", category="replicas"),
        summary=report(REPLICAS_QA["summary"], caption="../report/replicas_summary.rst", category="replicas"),
        samples=report(REPLICAS_QA["samples"], caption="../report/replicas_samples.rst", category="replicas"),
    log:
        "logs/replicas/replicas_qa.log",
    benchmark:
        "benchmarks/replicas/replicas_qa.tsv"
    params:
        z_bins=REPLICAS["z_bins"],
        min_mask_fraction=REPLICAS["qa"]["min_mask_fraction"],
        grid_per_bin=REPLICAS["qa"]["grid_per_bin"],
    conda:
        CPU_ENV
    shell:
        "python scripts/replicas_qa.py --replicas {input.replicas:q} --real {input.real:q} "
        "--test-csv {input.csv:q} --history {input.history:q} --z-bins {params.z_bins} "
        "--min-mask-fraction {params.min_mask_fraction} --grid-per-bin {params.grid_per_bin} "
        "--out-json {output.json:q} --out-table {output.table:q} --out-summary {output.summary:q} "
        "--out-samples {output.samples:q} > {log:q} 2>&1"
