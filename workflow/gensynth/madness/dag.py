"""The madness DAG's file layout and input functions (plain Python: the rules read it at parse time)."""

from __future__ import annotations

import os
import shlex

from ..errors import GensynthError
from .naming import MNIST_FILES, w_label

ROOT = "results/madness"
LOOP = f"{ROOT}/{{scenario}}/w{{w}}"  # one scenario's loop at one w
INITIAL_MODEL = f"{ROOT}/initial/model_initial.ckpt"
INITIAL_DATA = f"{ROOT}/initial/gen_data_initial_w{{w}}.npz"
FIGURES = f"{ROOT}/figures"


def w_labels(section: dict) -> list[str]:
    return [w_label(w) for w in section["guidance_weights"]]


def per_generation(section: dict, pattern: str, scenario: str, w: str) -> list[str]:
    """``pattern`` (with {scenario}, {w}, {g}) for every generation of one scenario's loop at one w."""
    return [pattern.format(scenario=scenario, w=w, g=g) for g in range(section["scenarios"][scenario]["generations"])]


def previous_generation(scenario: str, w: str, g: int | str) -> dict[str, str]:
    """Generation g reads generation g-1's samples and checkpoint (the initial ones for g = 0)."""
    g = int(g)
    if g == 0:
        return {"synthetic": INITIAL_DATA.format(w=w), "prev_model": INITIAL_MODEL}
    loop = LOOP.format(scenario=scenario, w=w)
    return {"synthetic": f"{loop}/gen_data_{g - 1}_w{w}.npz", "prev_model": f"{loop}/model_{g - 1}_w{w}.ckpt"}


def mnist_inputs(section: dict) -> list[str]:
    """mnist_idx: the four IDX files (plain or .gz), so that new files rebuild everything; digits: none."""
    data = section["data"]
    if data["source"] != "mnist_idx":
        return []
    directory = data["mnist_dir"]
    if not directory:
        raise GensynthError("config key 'madness.data.mnist_dir' = '': expected the folder of the MNIST IDX files when madness.data.source is mnist_idx")
    found = []
    for stem in MNIST_FILES.values():
        existing = [path for path in (f"{directory}/{stem}", f"{directory}/{stem}.gz") if os.path.isfile(path)]
        if not existing:
            raise GensynthError(f"config key 'madness.data.mnist_dir' = {directory!r}: {stem} (or {stem}.gz) not found there")
        found.append(existing[0])
    return found


def compare_flags(section: dict, metrics_pattern: str, w: str) -> str:
    """``--scenario NAME METRICS...`` for every scenario that runs, at one w."""
    return " ".join(
        f"--scenario {s} " + " ".join(shlex.quote(p) for p in per_generation(section, metrics_pattern, s, w))
        for s in section["scenarios"]["run"]
    )


def final_outputs(section: dict) -> list[str]:
    """What `rule all` builds: per w, the comparison; per scenario and w, detection and figures."""
    paths = []
    for w in w_labels(section):
        paths += [f"{ROOT}/summary_w{w}.csv", f"{FIGURES}/fid_scenarios_w{w}.png"]
        for s in section["scenarios"]["run"]:
            paths += [
                f"{LOOP.format(scenario=s, w=w)}/detection_w{w}.json",
                f"{FIGURES}/{s}_w{w}_signals.png",
                f"{FIGURES}/{s}_w{w}_metrics.png",
                f"{FIGURES}/{s}_w{w}_spectra.png",
            ]
    return paths
