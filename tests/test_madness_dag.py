"""madness in the DAG (dry-runs): the generational chains of every unit and replicate, matched_real's loop, the
collapse test's inputs, one generation as a target, w and scenarios from the config, bad config."""

from __future__ import annotations

import re
from collections import Counter

from test_contract import idx_headers

from conftest import config_error, default_config, snakemake
from gensynth.madness import dag

UNITS = default_config()["madness"]["detection"]["initial_models"]  # the default's independent initial models


def job_stats(output: str) -> Counter:
    table = output.split("Job stats:")[1].split("\n\n")[0]
    return Counter({m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"})


def job_blocks(output: str) -> list[str]:
    """A dry-run's jobs, each from its ``rule <name>:`` line to the next."""
    return re.split(r"\n(?=(?:local)?rule \w+:)", output)[1:]


def generation_jobs(output: str) -> list[tuple[str, str, int, int, int]]:
    """(scenario, w, unit, replicate, g) of every madness_generation job of a dry-run."""
    jobs = [block for block in job_blocks(output) if block.startswith("rule madness_generation:")]
    found = [dict(re.findall(r"(\w+)=([\w.]+)", re.search(r"wildcards: (.+)", job).group(1))) for job in jobs]
    return sorted((f["scenario"], f["w"], int(f["unit"]), int(f["rep"]), int(f["g"])) for f in found)


def command_of(output: str, *parts: str) -> str:
    """The one printed command that holds every one of ``parts``."""
    (command,) = [line for line in output.splitlines() if line.startswith("Shell command: ") and all(part in line for part in parts)]
    return command


def test_a_loop_of_g_generations_is_a_chain_of_files_per_unit_and_replicate(project):
    (project / "three.yaml").write_text(
        "madness:\n  detection: {initial_models: 3}\n  scenarios:\n    full_synthetic: {generations: 3, n_epoch: 2, N_next: 10}\n"
    )
    output = snakemake(project, "-n", "-p", "--configfile", "three.yaml", "--cores", "2", "results/madness/figures/full_synthetic_w0_metrics.png").stdout
    stats = job_stats(output)
    assert stats["madness_generation"] == 3 * 2 * 3  # 3 units of 2 replicate chains, 3 generations each
    assert stats["madness_metrics"] == stats["madness_jacobian"] == 3 * 2  # one per chain
    assert stats["madness_train_initial"] == stats["madness_sample_initial"] == stats["madness_make_probes"] == 3  # one per unit
    assert stats["madness_train_lenet"] == 1
    assert generation_jobs(output) == [("full_synthetic", "0", u, r, g) for u in range(3) for r in range(2) for g in range(3)]
    for u in range(3):
        assert f"--unit {u} " in command_of(output, "madness_train_initial.py", f"initial/unit{u}/model_initial.ckpt")
        assert f"--unit {u} " in command_of(output, "madness_sample.py", f"initial/unit{u}/gen_data_initial_w0.npz")
        assert f"--unit {u} " in command_of(output, "madness_make_probes.py", f"probes/unit{u}.npz")
        for r in range(2):
            chain = f"results/madness/full_synthetic/w0/unit{u}/rep{r}"
            # generation 0 reads its unit's initial set and model; each later one the generation before of its own chain
            first = command_of(output, "--generation 0 ", f"--unit {u} --replicate {r} ")
            assert (
                f"--synthetic results/madness/initial/unit{u}/gen_data_initial_w0.npz --prev-model results/madness/initial/unit{u}/model_initial.ckpt " in first
            )
            assert "--n-epoch 2 --n-next 10 " in first and "--n-real" not in first
            for g in (1, 2):
                command = command_of(output, f"--generation {g} ", f"--unit {u} --replicate {r} ")
                assert f"--synthetic {chain}/gen_data_{g - 1}_w0.npz --prev-model {chain}/model_{g - 1}_w0.ckpt " in command
            assert f"--probes results/madness/probes/unit{u}.npz " in command_of(output, "madness_jacobian.py", chain)
    jobs = [block for block in job_blocks(output) if re.match(r"rule madness_(generation|jacobian|train_initial):", block)]
    assert jobs and all(re.search(r"resources: .*\bgpu=1\b", job) for job in jobs)


def test_matched_real_runs_full_synthetics_loop_on_real_images(project):
    (project / "sizes.yaml").write_text("madness:\n  scenarios:\n    full_synthetic: {generations: 2, n_epoch: 7, N_next: 12}\n")
    output = snakemake(project, "-n", "-p", "--configfile", "sizes.yaml", "--cores", "2", "results/madness/matched_real/w0/unit1/rep0/model_1_w0.ckpt").stdout
    assert generation_jobs(output) == [("matched_real", "0", 1, 0, g) for g in range(2)]
    # no initial set to sample: it trains on real images from its unit's model_initial
    assert set(job_stats(output)) == {"madness_prepare_data", "madness_train_initial", "madness_generation"}
    first = command_of(output, "--scenario matched_real --generation 0 ")
    assert "--synthetic" not in first and "--prev-model results/madness/initial/unit1/model_initial.ckpt " in first
    assert "--n-epoch 7 --n-next 12 --n-real 12 --warm-start " in first  # full_synthetic's sizes, as many real images as its samples
    assert "--prev-model results/madness/matched_real/w0/unit1/rep0/model_0_w0.ckpt " in command_of(output, "--scenario matched_real --generation 1 ")


def test_the_collapse_test_reads_both_scenarios_chains_unit_major(project):
    output = snakemake(project, "-n", "-p", "--cores", "2", "results/madness/full_synthetic/w0/detection_w0.json").stdout
    stats = job_stats(output)
    generations = default_config()["madness"]["scenarios"]["full_synthetic"]["generations"]
    assert stats["madness_detect"] == 1 and stats["madness_generation"] == 2 * UNITS * 2 * generations
    assert stats["madness_make_probes"] == UNITS and stats["madness_sample_initial"] == UNITS  # full_synthetic's; matched_real needs none
    command = command_of(output, "madness_detect.py")
    chains = [f"unit{u}/rep{r}" for u in range(UNITS) for r in range(2)]
    groups = [
        f"--scenario {s} --metrics "
        + " ".join(f"results/madness/{s}/w0/{c}/metrics_w0.json" for c in chains)
        + " --jacobians "
        + " ".join(f"results/madness/{s}/w0/{c}/jacobian_w0.npz" for c in chains)
        for s in ("full_synthetic", "matched_real")
    ]
    assert (
        f"scripts/madness_detect.py {' '.join(groups)} --replicates 2 --seed 0 --initial-models {UNITS} --alpha 0.05 --n-bootstrap 200 --scale demo " in command
    )
    assert (
        "--label w=0 --out-json results/madness/full_synthetic/w0/detection_w0.json --out-figure results/madness/figures/full_synthetic_w0_signals.png "
        "--out-error-rates results/madness/figures/error_rates_w0.png " in command
    )
    assert "probes" not in command


def test_one_generations_checkpoint_builds_exactly_its_chain(project):
    output = snakemake(project, "-n", "--cores", "2", "results/madness/fresh/w0/unit1/rep1/model_2_w0.ckpt").stdout
    stats = job_stats(output)
    assert generation_jobs(output) == [("fresh", "0", 1, 1, g) for g in range(3)]
    assert set(stats) == {"madness_prepare_data", "madness_train_initial", "madness_sample_initial", "madness_generation"}
    assert stats["madness_train_initial"] == stats["madness_sample_initial"] == 1  # its own unit's only


def test_the_groups_context_unet_is_a_config_choice(project):
    (project / "ctx.yaml").write_text("madness:\n  model: {architecture: context_unet, block_out_channels: [32, 64]}\n")
    output = snakemake(project, "-n", "-p", "--configfile", "ctx.yaml", "--cores", "1", "results/madness/initial/unit0/model_initial.ckpt").stdout
    command = next(line for line in output.splitlines() if "madness_train_initial.py" in line)
    assert "--architecture context_unet --block-out-channels 32 64 " in command


def test_every_w_and_only_the_configured_scenarios_run(project):
    (project / "ws.yaml").write_text(
        "madness:\n  guidance_weights: [0, 0.5]\n  scenarios:\n    run: [fresh, augmented_synthetic]\n"
        "    fresh: {generations: 2, n_epoch: 1, N_next: 20, n_real: 10}\n"
        "    augmented_synthetic: {generations: 2, n_epoch: 1, N_next: 20}\n"
    )
    output = snakemake(project, "-n", "-p", "--configfile", "ws.yaml", "--cores", "2", "--config", "modules=[madness]").stdout
    stats = job_stats(output)
    assert generation_jobs(output) == sorted(
        (s, w, u, r, g) for s in ("augmented_synthetic", "fresh") for w in ("0", "0.5") for u in range(UNITS) for r in range(2) for g in range(2)
    )
    assert stats["madness_sample_initial"] == 2 * UNITS and stats["madness_compare"] == 2  # per unit and w; per w
    assert "madness_detect" not in stats  # the collapse test needs full_synthetic and matched_real
    assert "--w 0.5" in output and "--n-real 10" in output
    compare = command_of(output, "madness_compare.py", "summary_w0.csv")
    assert "--scenario fresh --metrics results/madness/fresh/w0/unit0/rep0/metrics_w0.json results/madness/fresh/w0/unit0/rep1/metrics_w0.json " in compare
    assert "--replicates 2 " in compare
    fresh = [line for line in output.splitlines() if "madness_generation.py --scenario fresh" in line]
    assert len(fresh) == 2 * UNITS * 2 * 2 and all("--n-next 20 --n-real 10 " in line for line in fresh)
    assert "full_synthetic" not in output and "matched_real" not in output


def test_unknown_targets_fail_at_parse_time(project):
    """The scenario, w, unit and replicate wildcards take only the configured values, so a typo'd or unconfigured
    target is no target; dry-runs show the constraints reach the rules."""
    section = default_config()["madness"]
    for pattern, known, unknown in (
        (dag.SCENARIO_PATTERN, "matched_real", "matched"),
        (dag.w_pattern(section), "0", "0.5"),
        (dag.unit_pattern(section), str(UNITS - 1), str(UNITS)),
        (dag.replicate_pattern(section), "1", "2"),
    ):
        assert re.fullmatch(pattern, known) and not re.fullmatch(pattern, unknown), pattern
    for target in (
        "results/madness/fresh/w0/unit0/rep2/model_0_w0.ckpt",
        f"results/madness/initial/unit{UNITS}/model_initial.ckpt",
        f"results/madness/probes/unit{UNITS}.npz",
    ):
        result = snakemake(project, "-n", "--cores", "1", target, check=False)
        assert result.returncode != 0 and "MissingRuleException" in result.stdout + result.stderr, target


def test_bad_madness_config_is_one_line():
    cases = {
        "madness:\n  scenarios:\n    full_synthetic: {generations: 1}\n": (
            "config key 'madness.scenarios.full_synthetic.generations' = 1: expected a number >= 2"
        ),
        "madness:\n  data:\n    source: cifar\n": "config key 'madness.data.source' = cifar: expected one of digits, mnist_idx",
        "madness:\n  scenarios:\n    fresh: {n_reel: 3}\n": "config key 'madness.scenarios.fresh': unknown key 'n_reel'",
        "madness:\n  guidance_weights: [-1]\n": "config key 'madness.guidance_weights[0]' = -1: expected a number >= 0",
        "madness:\n  detection: {initial_models: 1}\n": "config key 'madness.detection.initial_models' = 1: expected a number >= 2",
        "madness:\n  scenarios:\n    run: [matched_real, fresh]\n    fresh: {N_next: 101}\n": (
            "config key 'madness.scenarios.fresh.N_next' = 101: expected at most initial.N_with_w = 100 (generation 0 trains on the initial set's first N_next)"
        ),
        "madness:\n  scenarios:\n    run: [matched_real]\n    full_synthetic: {N_next: 500}\n": (
            "config key 'madness.scenarios.full_synthetic.N_next' = 500: expected at most 419: 3 generations of matched_real's new real images "
            "from 1257 real training images"
        ),
        "madness:\n  scenarios:\n    matched_real: {N_next: 10}\n": "config key 'madness.scenarios': unknown key 'matched_real'",
    }
    for text, message in cases.items():
        assert message in config_error(text), text


def test_mnist_files_are_the_data_rules_inputs(project):
    (project / "mnist.yaml").write_text("madness:\n  data:\n    source: mnist_idx\n    mnist_dir: mine\n    image_size: 28\n")
    result = snakemake(project, "-n", "--configfile", "mnist.yaml", "--cores", "1", "results/madness/data/real.npz", check=False)
    assert result.returncode != 0
    assert (
        "config key 'madness.data.mnist_dir' = mine: expected a folder holding train-images-idx3-ubyte (or train-images-idx3-ubyte.gz): not found there"
    ) in result.stdout + result.stderr
    idx_headers(project / "mine")  # a dry-run reads only their headers
    output = snakemake(project, "-n", "-p", "--configfile", "mnist.yaml", "--cores", "1", "results/madness/data/real.npz").stdout
    assert "--source mnist_idx --mnist-dir mine --image-size 28" in output
    assert "input: mine/train-images-idx3-ubyte.gz" in output
