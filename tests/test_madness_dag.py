"""madness in the DAG (dry-runs): the generational chain, one generation as a target, w and scenarios from the config, bad config."""

from __future__ import annotations

import re
from collections import Counter

from test_contract import idx_headers

from conftest import config_error, default_config, snakemake
from gensynth.madness import dag


def job_stats(output: str) -> Counter:
    table = output.split("Job stats:")[1].split("\n\n")[0]
    return Counter({m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"})


def job_blocks(output: str) -> list[str]:
    """A dry-run's jobs, each from its ``rule <name>:`` line to the next."""
    return re.split(r"\n(?=(?:local)?rule \w+:)", output)[1:]


def generation_jobs(output: str) -> list[tuple[str, str, int, int]]:
    """(scenario, w, replicate, g) of every madness_generation job of a dry-run."""
    jobs = [block for block in job_blocks(output) if block.startswith("rule madness_generation:")]
    found = [re.search(r"wildcards: scenario=(\w+), w=([\d.]+), rep=(\d+), g=(\d+)", job) for job in jobs]
    return sorted((m.group(1), m.group(2), int(m.group(3)), int(m.group(4))) for m in found)


def test_a_loop_of_g_generations_is_a_chain_of_files(project):
    (project / "three.yaml").write_text("madness:\n  scenarios:\n    run: [full_synthetic]\n    full_synthetic: {generations: 3, n_epoch: 2, N_next: 10}\n")
    output = snakemake(project, "-n", "-p", "--configfile", "three.yaml", "--cores", "2", "results/madness/full_synthetic/w0/detection_w0.json").stdout
    stats = job_stats(output)
    assert stats["madness_generation"] == 3 * 3  # 3 generations of 3 replicate chains
    assert stats["madness_metrics"] == stats["madness_jacobian"] == 3  # one per chain
    assert stats["madness_train_initial"] == stats["madness_sample_initial"] == stats["madness_train_lenet"] == 1
    assert generation_jobs(output) == [("full_synthetic", "0", r, g) for r in range(3) for g in range(3)]
    # each generation reads the one before of its own replicate through its files
    for r in range(3):
        for g in (1, 2):
            command = next(line for line in output.splitlines() if f"--generation {g} " in line and f"--replicate {r} " in line)
            assert f"--synthetic results/madness/full_synthetic/w0/rep{r}/gen_data_{g - 1}_w0.npz" in command
            assert f"--prev-model results/madness/full_synthetic/w0/rep{r}/model_{g - 1}_w0.ckpt" in command
    first = next(line for line in output.splitlines() if "--generation 0 " in line)
    assert "--synthetic results/madness/initial/gen_data_initial_w0.npz" in first and "--n-epoch 2 --n-next 10" in first
    jobs = [block for block in job_blocks(output) if re.match(r"rule madness_(generation|jacobian|train_initial):", block)]
    assert jobs and all(re.search(r"resources: .*\bgpu=1\b", job) for job in jobs)


def test_one_generations_checkpoint_builds_exactly_its_chain(project):
    output = snakemake(project, "-n", "--cores", "2", "results/madness/fresh/w0/rep1/model_2_w0.ckpt").stdout
    stats = job_stats(output)
    assert generation_jobs(output) == [("fresh", "0", 1, g) for g in range(3)]
    assert set(stats) == {"madness_prepare_data", "madness_train_initial", "madness_sample_initial", "madness_generation"}


def test_the_groups_context_unet_is_a_config_choice(project):
    (project / "ctx.yaml").write_text("madness:\n  model: {architecture: context_unet, block_out_channels: [32, 64]}\n")
    output = snakemake(project, "-n", "-p", "--configfile", "ctx.yaml", "--cores", "1", "results/madness/initial/model_initial.ckpt").stdout
    command = next(line for line in output.splitlines() if "madness_train_initial.py" in line)
    assert "--architecture context_unet --block-out-channels 32 64 " in command


def test_every_w_and_only_the_configured_scenarios_run(project):
    (project / "ws.yaml").write_text(
        "madness:\n  guidance_weights: [0, 0.5]\n  scenarios:\n    run: [fresh, augmented_synthetic]\n"
        "    fresh: {generations: 2, n_epoch: 1, N_next: 20, n_real: 10, N_initial: 30}\n"
        "    augmented_synthetic: {generations: 2, n_epoch: 1, N_next: 20}\n"
    )
    output = snakemake(project, "-n", "-p", "--configfile", "ws.yaml", "--cores", "2", "--config", "modules=[madness]").stdout
    stats = job_stats(output)
    assert generation_jobs(output) == sorted((s, w, r, g) for s in ("augmented_synthetic", "fresh") for w in ("0", "0.5") for r in range(3) for g in range(2))
    assert stats["madness_sample_initial"] == 2 and stats["madness_compare"] == 2 and stats["madness_detect"] == 2  # one per w
    assert "--w 0.5" in output and "--n-real 10" in output
    fresh = [line for line in output.splitlines() if "madness_generation.py --scenario fresh" in line]
    assert all(("--n-initial 30 " in line) == ("--generation 0 " in line) for line in fresh) and len(fresh) == 2 * 3 * 2
    assert "full_synthetic" not in output


def test_unknown_targets_fail_at_parse_time(project):
    """The scenario, w and replicate wildcards take only the configured values, so a typo'd or unconfigured
    target is no target; one dry-run shows the constraints reach the rules."""
    section = default_config()["madness"]
    for pattern, known, unknown in (
        (dag.SCENARIO_PATTERN, "full_synthetic", "full_synth"),
        (dag.w_pattern(section), "0", "0.5"),
        (dag.replicate_pattern(section), "2", "3"),
    ):
        assert re.fullmatch(pattern, known) and not re.fullmatch(pattern, unknown), pattern
    result = snakemake(project, "-n", "--cores", "1", "results/madness/fresh/w0/rep3/model_0_w0.ckpt", check=False)
    assert result.returncode != 0 and "MissingRuleException" in result.stdout + result.stderr


def test_bad_madness_config_is_one_line():
    cases = {
        "madness:\n  scenarios:\n    full_synthetic: {generations: 1}\n": (
            "config key 'madness.scenarios.full_synthetic.generations' = 1: expected a number >= 2"
        ),
        "madness:\n  data:\n    source: cifar\n": "config key 'madness.data.source' = cifar: expected one of digits, mnist_idx",
        "madness:\n  scenarios:\n    fresh: {n_reel: 3}\n": "config key 'madness.scenarios.fresh': unknown key 'n_reel'",
        "madness:\n  guidance_weights: [-1]\n": "config key 'madness.guidance_weights[0]' = -1: expected a number >= 0",
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
