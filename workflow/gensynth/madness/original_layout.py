"""The group's own DDPM-MNIST files, torch-free: their names, the layout a checkpoint must have, its schedule.

The group's code saves ``torch.save(ddpm.state_dict(), "model_{g}_w{w}.pth")`` of a ``DDPM`` wrapper: the
network's tensors under ``nn_model.`` and the schedule buffers with n_T + 1 entries (t = 0 .. n_T), and its
sample sets as tensors ``gen_data_with_w{g}_w{w}`` (images) and ``gen_index_with_w{g}_w{w}`` (labels), no
extension. The Snakefile checks every file here at parse time (gensynth.madness.torchzip reads them
without torch); the loader (gensynth.madness.original) checks the tensors torch loads against the same
layout, so both refuse the same files.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from ..errors import GensynthError
from .torchzip import TensorInfo, TorchZip, tensor_shapes

IMAGE_SIZE = 28  # the group's ContextUnet pools the 7x7 bottom map with a fixed AvgPool2d(7): 28x28 images
CHANNELS = 1
NUM_CLASSES = 10  # MNIST's digits: the real data's labels, which the probes are conditioned on
SCHEDULE_BUFFERS = ("alpha_t", "oneover_sqrta", "sqrt_beta_t", "alphabar_t", "sqrtab", "sqrtmab", "mab_over_sqrtmab")
SCHEDULE_RTOL = 1e-3  # the group computed its buffers in float32, where 1 - alphabar_t loses digits at small t (2e-4)
NETWORK_PREFIX = "nn_model."
W_TEXT = r"\d+(?:\.\d+)?"  # the group's w in file names: 0.0, 0.5, 2.0
MODEL_FILE = re.compile(rf"model_(\d+)_w({W_TEXT})\.pth")
SAMPLE_DATA_FILE = re.compile(rf"gen_data_with_w(\d+)_w({W_TEXT})")
LISTED = 3  # mismatches named in one error line

# The group's parameter names -> gensynth's ContextUnet's (prefix stripped first).
RENAMES = (
    (re.compile(r"^(down1|down2|up1|up2)\.model\."), r"\1.layers."),
    (re.compile(r"^timeembed(\d)\.model\."), r"time_embed\1."),
    (re.compile(r"^contextembed(\d)\.model\."), r"context_embed\1."),
)
# The first Linear of each context embedding: the group's kept class enters as minus its one-hot vector.
NEGATED = ("context_embed1.0.weight", "context_embed2.0.weight")


def residual_block(prefix: str, cin: int, cout: int) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for conv, inputs in (("conv1", cin), ("conv2", cout)):
        shapes[f"{prefix}.{conv}.0.weight"] = (cout, inputs, 3, 3)
        for name in ("0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"):
            shapes[f"{prefix}.{conv}.{name}"] = (cout,)
        shapes[f"{prefix}.{conv}.1.num_batches_tracked"] = ()
    return shapes


def embedding(prefix: str, inputs: int, width: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.model.0.weight": (width, inputs),
        f"{prefix}.model.0.bias": (width,),
        f"{prefix}.model.2.weight": (width, width),
        f"{prefix}.model.2.bias": (width,),
    }


def network_shapes(n_feat: int, n_classes: int) -> dict[str, tuple[int, ...]]:
    """The group's ContextUnet(in_channels=1, n_feat, n_classes) state dict: name -> shape, its own names."""
    n, wide, bottom = n_feat, 2 * n_feat, IMAGE_SIZE // 4
    shapes = residual_block("init_conv", CHANNELS, n)
    shapes |= residual_block("down1.model.0", n, n) | residual_block("down2.model.0", n, wide)
    shapes |= embedding("timeembed1", 1, wide) | embedding("timeembed2", 1, n)
    shapes |= embedding("contextembed1", n_classes, wide) | embedding("contextembed2", n_classes, n)
    shapes |= {"up0.0.weight": (wide, wide, bottom, bottom), "up0.0.bias": (wide,), "up0.1.weight": (wide,), "up0.1.bias": (wide,)}
    for name, cin in (("up1", 2 * wide), ("up2", wide)):
        shapes |= {f"{name}.model.0.weight": (cin, n, 2, 2), f"{name}.model.0.bias": (n,)}
        shapes |= residual_block(f"{name}.model.1", n, n) | residual_block(f"{name}.model.2", n, n)
    shapes |= {"out.0.weight": (n, wide, 3, 3), "out.0.bias": (n,), "out.1.weight": (n,), "out.1.bias": (n,)}
    shapes |= {"out.3.weight": (CHANNELS, n, 3, 3), "out.3.bias": (CHANNELS,)}
    return shapes


def checkpoint_shapes(n_feat: int, n_classes: int, n_T: int) -> dict[str, tuple[int, ...]]:
    """The group's DDPM state dict: the network under ``nn_model.``, then the schedule buffers."""
    shapes = {NETWORK_PREFIX + name: shape for name, shape in network_shapes(n_feat, n_classes).items()}
    return shapes | {name: (n_T + 1,) for name in SCHEDULE_BUFFERS}


def gensynth_name(name: str) -> str:
    """A network tensor's name in gensynth's ContextUnet, from the group's (``nn_model.`` stripped)."""
    for pattern, replacement in RENAMES:
        name = pattern.sub(replacement, name)
    return name


def declared(n_feat: int, n_classes: int, n_T: int) -> str:
    return f"the declared original ContextUnet (n_feat {n_feat}, n_classes {n_classes}, {CHANNELS} channel, {IMAGE_SIZE}x{IMAGE_SIZE}) with n_T {n_T}"


def listed(names: list[str]) -> str:
    return ", ".join(names[:LISTED]) + (f" and {len(names) - LISTED} more" if len(names) > LISTED else "")


def layout_problem(shapes: dict[str, tuple[int, ...]], n_feat: int, n_classes: int, n_T: int) -> str | None:
    """What keeps a state dict (name -> shape) from being the declared checkpoint, in one line; None when it is."""
    expected = checkpoint_shapes(n_feat, n_classes, n_T)
    problems = []
    missing = [name for name in expected if name not in shapes]
    unexpected = [name for name in shapes if name not in expected]
    if missing:
        problems.append(f"missing {listed(missing)}")
    if unexpected:
        problems.append(f"unexpected {listed(unexpected)}")
    wrong = [f"{name} of shape {tuple(shapes[name])}, expected {shape}" for name, shape in expected.items() if name in shapes and tuple(shapes[name]) != shape]
    if wrong:
        problems.append(listed(wrong))
    if not problems:
        return None
    hints = []
    first = shapes.get(NETWORK_PREFIX + "init_conv.conv1.0.weight")
    if first and len(first) == 4 and first[0] != n_feat:
        hints.append(f"its n_feat is {first[0]}")
    up0 = shapes.get(NETWORK_PREFIX + "up0.0.weight")
    if up0 and len(up0) == 4 and up0[-1] != IMAGE_SIZE // 4:
        hints.append(f"its {up0[-1]}x{up0[-1]} up0 kernel means {4 * up0[-1]}x{4 * up0[-1]} images")
    return f"not {declared(n_feat, n_classes, n_T)}: " + "; ".join(problems) + (f" ({', '.join(hints)})" if hints else "")


def schedule(n_T: int, betas: tuple[float, float] | list[float]) -> dict[str, list[float]]:
    """The group's DDPM schedule buffers for t = 0 .. n_T (float64): beta_t linear from betas[0] to betas[1]."""
    beta = [betas[0] + (betas[1] - betas[0]) * t / n_T for t in range(n_T + 1)]
    alpha = [1 - b for b in beta]
    alphabar, log_sum = [], 0.0
    for a in alpha:
        log_sum += math.log(a)
        alphabar.append(math.exp(log_sum))
    return {
        "alpha_t": alpha,
        "oneover_sqrta": [1 / math.sqrt(a) for a in alpha],
        "sqrt_beta_t": [math.sqrt(b) for b in beta],
        "alphabar_t": alphabar,
        "sqrtab": [math.sqrt(ab) for ab in alphabar],
        "sqrtmab": [math.sqrt(1 - ab) for ab in alphabar],
        "mab_over_sqrtmab": [(1 - a) / math.sqrt(1 - ab) for a, ab in zip(alpha, alphabar)],
    }


def schedule_problem(buffers: dict[str, list[float]], n_T: int, betas: tuple[float, float] | list[float]) -> str | None:
    """Whether the saved schedule buffers are the schedule of n_T and betas (None), else the first that is not."""
    for name, expected in schedule(n_T, betas).items():
        found = buffers[name]
        for t, (value, want) in enumerate(zip(found, expected)):
            if not abs(value - want) <= SCHEDULE_RTOL * abs(want) + 1e-7:
                return f"schedule buffer {name}[{t}] = {value:.6g}, expected {want:.6g} for n_T {n_T} and betas {list(betas)}: saved with another schedule"
    return None


def check_checkpoint(path: str | Path, n_feat: int, n_classes: int, n_T: int, betas: tuple[float, float] | list[float]) -> None:
    """A model_{g}_w{w}.pth file against the declared architecture and schedule, read without torch; one error naming it."""
    with TorchZip(path) as archive:
        shapes = tensor_shapes(archive.obj)
        if shapes is None:
            raise GensynthError(f"{path}: not a state dict of tensors (found {type(archive.obj).__name__}): expected torch.save(ddpm.state_dict())")
        problem = layout_problem(shapes, n_feat, n_classes, n_T)
        if problem is None:
            problem = schedule_problem({name: archive.values(archive.obj[name]) for name in SCHEDULE_BUFFERS}, n_T, betas)
    if problem:
        raise GensynthError(f"{path}: {problem}")


def sample_set_problem(images: tuple[int, ...], images_float: bool, labels: tuple[int, ...]) -> str | None:
    """Whether an images tensor (N, 1, 28, 28) or (N, 28, 28) of floats and its labels (N,) fit; None when they do."""
    side = (IMAGE_SIZE, IMAGE_SIZE)
    if not (len(images) in (3, 4) and tuple(images[-2:]) == side and (len(images) == 3 or images[1] == CHANNELS)) or not images_float:
        return f"images of shape {tuple(images)}: expected floats of shape (N, {CHANNELS}, {IMAGE_SIZE}, {IMAGE_SIZE}) or (N, {IMAGE_SIZE}, {IMAGE_SIZE})"
    if tuple(labels) != (images[0],):
        return f"labels of shape {tuple(labels)}: expected ({images[0]},), one per image"
    return None


def check_sample_set(data_path: str | Path, index_path: str | Path) -> None:
    """A gen_data/gen_index pair, read without torch: one tensor each, of matching shapes; one error naming the file."""
    found = {}
    for path in (data_path, index_path):
        with TorchZip(path) as archive:
            if not isinstance(archive.obj, TensorInfo):
                raise GensynthError(f"{path}: not a single tensor (found {type(archive.obj).__name__}): expected torch.save(tensor)")
            found[path] = archive.obj
    images, labels = found[data_path], found[index_path]
    problem = sample_set_problem(images.shape, images.dtype.startswith(("float", "bfloat")), labels.shape)
    if problem:
        raise GensynthError(f"{data_path if problem.startswith('images') else index_path}: {problem}")


def w_matches(label: str, other: str) -> bool:
    return float(label) == float(other)


def discover_models(models_dir: str | Path) -> dict[str, dict[int, str]]:
    """w label -> generation -> path of every model_{g}_w{w}.pth in models_dir (w labels as the files spell them)."""
    found: dict[str, dict[int, str]] = {}
    for name in sorted(os.listdir(models_dir)):
        match = MODEL_FILE.fullmatch(name)
        if match:
            g, w = int(match.group(1)), match.group(2)
            if g in found.setdefault(w, {}):
                raise GensynthError(f"{models_dir}: {name} and {Path(found[w][g]).name} are both generation {g} at w {w}")
            found[w][g] = os.path.join(models_dir, name)
    return {w: dict(sorted(found[w].items())) for w in sorted(found, key=float)}


def discover_sample_sets(data_dir: str | Path, w_labels: list[str]) -> dict[str, dict[int, tuple[str, str]]]:
    """Model w label -> generation -> (gen_data, gen_index) path of every sample set in data_dir; a set whose w
    matches no model's, or without its gen_index file, is one error."""
    found: dict[str, dict[int, tuple[str, str]]] = {w: {} for w in w_labels}
    for name in sorted(os.listdir(data_dir)):
        match = SAMPLE_DATA_FILE.fullmatch(name)
        if not match:
            continue
        g, w = int(match.group(1)), match.group(2)
        owner = next((label for label in w_labels if w_matches(label, w)), None)
        if owner is None:
            raise GensynthError(f"{os.path.join(data_dir, name)}: its w {w} is none of the checkpoints' ({', '.join(w_labels)})")
        data, index = os.path.join(data_dir, name), os.path.join(data_dir, f"gen_index_with_w{match.group(1)}_w{w}")
        if not os.path.isfile(index):
            raise GensynthError(f"{data}: its labels {index} not found")
        if g in found[owner]:
            raise GensynthError(f"{data} and {found[owner][g][0]} are both generation {g} at w {owner}")
        found[owner][g] = (data, index)
    return {w: dict(sorted(sets.items())) for w, sets in found.items()}


def generations_of(paths: list[str], given: list[int] | None, pattern: re.Pattern, flag: str) -> list[int]:
    """Each file's generation: ``given`` (``--generations``), else read from the group's file name."""
    if given is not None:
        if len(given) != len(paths):
            raise GensynthError(f"--generations: {len(given)} values for {len(paths)} {flag}")
        return given
    found = [pattern.fullmatch(Path(p).name) for p in paths]
    unnamed = [p for p, m in zip(paths, found) if m is None]
    if unnamed:
        raise GensynthError(f"{unnamed[0]}: not named as {pattern.pattern}; give --generations")
    return [int(m.group(1)) for m in found]
