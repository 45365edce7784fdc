"""The group's own DDPM-MNIST checkpoints and sample sets (madness.original): loaded as gensynth ContextUnets that
compute the group's function, their spectra against an independent Jacobian, malformed files refused by the
loader and by the parse-time reader, the steps end to end, and the DAG's jobs."""

from __future__ import annotations

import importlib.util
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_madness_dag import job_blocks
from torch import nn

from conftest import ROOT, config_error, default_config, snakemake
from gensynth.errors import GensynthError
from gensynth.io import load_json, load_npz
from gensynth.madness import dag
from gensynth.madness.context_unet import ContextUnet
from gensynth.madness.data import RealData, save_real_data
from gensynth.madness.jacobian import STAT_NAMES, spectrum_stats
from gensynth.madness.lenet import LeNetConfig, build_lenet, save_lenet
from gensynth.madness.original import build_original_unet, load_original
from gensynth.madness.original_layout import NETWORK_PREFIX, check_checkpoint, check_sample_set, checkpoint_shapes, gensynth_name
from gensynth.madness.original_samples import load_sample_set
from gensynth.madness.probes import probe_image_indices

N_FEAT, N_CLASSES, N_T, BETAS = 8, 10, 300, (1e-4, 0.02)
W = "0.0"  # the group's file names spell w as Python prints a float
GENERATIONS = (0, 1)


# A reference of the group's published layout, written from its facts (parameter names, the DDPM wrapper's
# buffers, the conventions): what the loaded gensynth module must reproduce.
class RefBlock(nn.Module):
    def __init__(self, cin: int, cout: int, is_res: bool = False):
        super().__init__()
        self.is_res, self.same = is_res, cin == cout
        self.conv1 = nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.GELU())
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.GELU())

    def forward(self, x):
        first = self.conv1(x)
        second = self.conv2(first)
        return ((x if self.same else first) + second) / 1.414 if self.is_res else second


class RefDown(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.model = nn.Sequential(RefBlock(cin, cout), nn.MaxPool2d(2))

    def forward(self, x):
        return self.model(x)


class RefUp(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.model = nn.Sequential(nn.ConvTranspose2d(cin, cout, 2, 2), RefBlock(cout, cout), RefBlock(cout, cout))

    def forward(self, x, skip):
        return self.model(torch.cat((x, skip), 1))


class RefEmbed(nn.Module):
    def __init__(self, dim: int, width: int):
        super().__init__()
        self.dim = dim
        self.model = nn.Sequential(nn.Linear(dim, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, x):
        return self.model(x.view(-1, self.dim))


class RefUnet(nn.Module):
    def __init__(self, n_feat: int, n_classes: int):
        super().__init__()
        n, self.n_feat, self.n_classes = n_feat, n_feat, n_classes
        self.init_conv = RefBlock(1, n, is_res=True)
        self.down1, self.down2 = RefDown(n, n), RefDown(n, 2 * n)
        self.to_vec = nn.Sequential(nn.AvgPool2d(7), nn.GELU())
        self.timeembed1, self.timeembed2 = RefEmbed(1, 2 * n), RefEmbed(1, n)
        self.contextembed1, self.contextembed2 = RefEmbed(n_classes, 2 * n), RefEmbed(n_classes, n)
        self.up0 = nn.Sequential(nn.ConvTranspose2d(2 * n, 2 * n, 7, 7), nn.GroupNorm(8, 2 * n), nn.ReLU())
        self.up1, self.up2 = RefUp(4 * n, n), RefUp(2 * n, n)
        self.out = nn.Sequential(nn.Conv2d(2 * n, n, 3, 1, 1), nn.GroupNorm(8, n), nn.ReLU(), nn.Conv2d(n, 1, 3, 1, 1))

    def forward(self, x, c, t, context_mask):
        n = self.n_feat
        x = self.init_conv(x)
        down1 = self.down1(x)
        down2 = self.down2(down1)
        hidden = self.up0(self.to_vec(down2))
        context = F.one_hot(c, self.n_classes).float() * (-1 * (1 - context_mask[:, None]))  # kept: minus the one-hot
        hidden = self.up1(self.contextembed1(context).view(-1, 2 * n, 1, 1) * hidden + self.timeembed1(t).view(-1, 2 * n, 1, 1), down2)
        hidden = self.up2(self.contextembed2(context).view(-1, n, 1, 1) * hidden + self.timeembed2(t).view(-1, n, 1, 1), down1)
        return self.out(torch.cat((hidden, x), 1))


class RefDDPM(nn.Module):
    def __init__(self, nn_model: nn.Module, betas, n_T: int):
        super().__init__()
        self.nn_model, self.n_T = nn_model, n_T
        beta = (betas[1] - betas[0]) * torch.arange(0, n_T + 1, dtype=torch.float32) / n_T + betas[0]
        alpha = 1 - beta
        alphabar = torch.cumsum(torch.log(alpha), dim=0).exp()
        buffers = {
            "alpha_t": alpha,
            "oneover_sqrta": 1 / torch.sqrt(alpha),
            "sqrt_beta_t": torch.sqrt(beta),
            "alphabar_t": alphabar,
            "sqrtab": torch.sqrt(alphabar),
            "sqrtmab": torch.sqrt(1 - alphabar),
            "mab_over_sqrtmab": (1 - alpha) / torch.sqrt(1 - alphabar),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value)

    def eps(self, x, c, step, dropped):
        """The group's call: time as step / n_T, context_mask 1 where the class is dropped."""
        return self.nn_model(x, c, step / self.n_T, dropped.float())


def reference_ddpm(seed: int, betas=BETAS, n_T: int = N_T) -> RefDDPM:
    """A trained-looking reference: random weights, and random batch-norm statistics and affine parameters."""
    torch.manual_seed(seed)
    ddpm = RefDDPM(RefUnet(N_FEAT, N_CLASSES), betas, n_T)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in ddpm.modules():
            if isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                module.weight.copy_(1 + 0.3 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.3 * torch.randn(module.bias.shape, generator=generator))
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(0.2 * torch.randn(module.running_mean.shape, generator=generator))
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
                module.num_batches_tracked.fill_(100)
    return ddpm.eval()


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict:
    """The group's files for two generations at one w: checkpoints and sample sets, as its code saves them."""
    folder = tmp_path_factory.mktemp("originals")
    models = {g: reference_ddpm(seed=10 + g) for g in GENERATIONS}
    for g, ddpm in models.items():
        torch.save(ddpm.state_dict(), folder / f"model_{g}_w{W}.pth")
        generator = torch.Generator().manual_seed(g)
        images = torch.rand(30, 1, 28, 28, generator=generator) * 1.2 - 0.1  # the sampler's x_0 is not clipped
        torch.save(images, folder / f"gen_data_with_w{g}_w{W}")
        torch.save(torch.arange(10).repeat(3), folder / f"gen_index_with_w{g}_w{W}")
    return {"dir": folder, "models": models}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_declared_layout_is_the_reference_state_dict_and_maps_onto_gensynths_context_unet():
    reference = {name: tuple(value.shape) for name, value in reference_ddpm(0).state_dict().items()}
    assert checkpoint_shapes(N_FEAT, N_CLASSES, N_T) == reference
    mapped = {gensynth_name(name.removeprefix(NETWORK_PREFIX)): shape for name, shape in reference.items() if name.startswith(NETWORK_PREFIX)}
    ours = {name: tuple(value.shape) for name, value in build_original_unet(N_FEAT, N_CLASSES, N_T).state_dict().items()}
    assert mapped == ours


def test_the_loaded_checkpoint_computes_the_groups_function_for_kept_and_dropped_classes(originals):
    path = originals["dir"] / f"model_1_w{W}.pth"
    model = load_original(path, N_FEAT, N_CLASSES, N_T, BETAS)
    reference = originals["models"][1]
    assert isinstance(model, ContextUnet) and not model.training and model.config.residual_divisor == 1.414
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(10, 1, 28, 28, generator=generator)
    steps = torch.tensor([1, 7, 50, 150, 299, 300, 20, 90, 200, 260])
    classes = torch.arange(10)
    with torch.no_grad():
        for dropped in (torch.zeros(10, dtype=torch.long), torch.ones(10, dtype=torch.long), torch.arange(10) % 2):
            tokens = torch.where(dropped.bool(), N_CLASSES, classes)  # the null token is the group's dropped context
            ours = model(x, steps, class_labels=tokens).sample
            torch.testing.assert_close(ours, reference.eps(x, classes, steps, dropped), rtol=0, atol=1e-6)
    # that tolerance tells the conventions apart: gensynth's default divisor sqrt(2) gives another function
    plain = ContextUnet.from_config({**model.config, "residual_divisor": math.sqrt(2)}).eval()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert (plain(x, steps, class_labels=classes).sample - reference.eps(x, classes, steps, torch.zeros(10))).abs().max() > 1e-5


def load_script(stem: str):
    spec = importlib.util.spec_from_file_location(f"original_{stem}", ROOT / "scripts" / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def measured(originals, tmp_path_factory) -> dict:
    """The three steps run on the files: spectra, sample metrics (an untrained LeNet, its accuracy check off), detection."""
    folder = tmp_path_factory.mktemp("measured")
    generator = np.random.default_rng(0)
    labels = np.tile(np.arange(10), 3)
    real = RealData(
        x_train=generator.uniform(-1, 1, (30, 1, 28, 28)).astype(np.float32),
        y_train=labels,
        x_test=generator.uniform(-1, 1, (30, 1, 28, 28)).astype(np.float32),
        y_test=labels,
    )
    save_real_data(folder / "real.npz", real)
    torch.manual_seed(0)
    save_lenet(folder / "lenet.ckpt", build_lenet(LeNetConfig(image_size=28), seed=0), {})
    models = [str(originals["dir"] / f"model_{g}_w{W}.pth") for g in GENERATIONS]
    common = ["--n-feat", str(N_FEAT), "--n-t", str(N_T), "--betas", *map(str, BETAS), "--seed", "4"]
    jacobian = folder / "jacobian.npz"
    args = ["--models", *models, "--real", str(folder / "real.npz"), *common, "--num-images", "1", "--timesteps", "50", "200"]
    assert load_script("madness_original_jacobian").main([*args, "--method", "exact", "--device", "cpu", "--out", str(jacobian)]) is None
    samples = [str(originals["dir"] / f"gen_data_with_w{g}_w{W}") for g in GENERATIONS]
    sample_labels = [str(originals["dir"] / f"gen_index_with_w{g}_w{W}") for g in GENERATIONS]
    metrics = folder / "metrics.json"
    metrics_args = ["--real", str(folder / "real.npz"), "--lenet", str(folder / "lenet.ckpt"), "--samples", *samples, "--labels", *sample_labels]
    load_script("madness_original_metrics").main([*metrics_args, "--min-accuracy", "0", "--nearest-k", "2", "--n-bootstrap", "3", "--out", str(metrics)])
    detection = folder / "detection.json"
    load_script("madness_original_detect").main(["--jacobian", str(jacobian), "--metrics", str(metrics), "--label", f"w={W}", "--out", str(detection)])
    return {"real": real, "jacobian": load_npz(jacobian), "metrics": load_json(metrics), "detection": load_json(detection)}


def test_the_spectra_are_those_of_an_independent_jacobian_of_the_groups_model_at_its_own_probes(originals, measured):
    found, real = measured["jacobian"], measured["real"]
    assert found["eigenvalues"].shape == (2, 2, 784) and found["generations"].tolist() == [0, 1]
    assert found["timesteps"].tolist() == [50, 200] and found["labels"].tolist() == real.y_test[found["image_index"]].tolist()
    assert found["image_index"].tolist() == np.repeat(probe_image_indices(real.y_test, 1, seed=4, unit=0), 2).tolist()  # unit 0's probe images
    x0 = (torch.from_numpy(real.x_test[found["image_index"]]) + 1) / 2  # [0, 1], as the group's ToTensor gives
    np.testing.assert_allclose(found["x0"], x0.numpy(), rtol=0, atol=1e-7)
    buffers = originals["models"][0]
    t = torch.from_numpy(found["timesteps"])
    expected_x_t = buffers.sqrtab[t, None, None, None] * x0 + buffers.sqrtmab[t, None, None, None] * torch.from_numpy(found["noise"])
    np.testing.assert_allclose(found["x_t"], expected_x_t.numpy(), rtol=0, atol=1e-6)
    for g in GENERATIONS:
        reference = originals["models"][g]
        for p in range(2):
            step, label = torch.tensor([int(found["timesteps"][p])]), torch.tensor([int(found["labels"][p])])

            def eps(flat, reference=reference, step=step, label=label):
                return reference.eps(flat.view(1, 1, 28, 28), label, step, torch.zeros(1)).reshape(-1)

            jac = torch.autograd.functional.jacobian(eps, torch.from_numpy(found["x_t"][p]).reshape(-1), vectorize=True).double()  # (784, 784)
            independent = torch.linalg.eigvalsh(jac.T @ jac).flip(0).numpy()
            ours = found["eigenvalues"][g, p]
            np.testing.assert_allclose(ours, independent, rtol=1e-4, atol=1e-6 * independent[0])
            for name, value in spectrum_stats(ours).items():
                assert found[name][g, p] == pytest.approx(value)
    assert set(STAT_NAMES) <= set(found)


def test_the_sample_metrics_and_the_single_chain_detection(measured):
    generations = measured["metrics"]["generations"]
    assert [g["generation"] for g in generations] == [0, 1] and all(g["num_generated"] == 30 for g in generations)
    assert all(0 < g["clipped_fraction"] < 0.3 and g["fid"]["value"] > 0 for g in generations)
    detection = measured["detection"]
    assert detection["chains"] == 1 and detection["departure_test"] is None
    assert "no training-seed replicates" in detection["cannot_support"] and "value per generation" in detection["supports"]
    fid = detection["signals"]["fid"]
    assert fid["generations"] == [0, 1] and fid["values"] == [g["fid"]["value"] for g in generations] and fid["change_from_first"][0] == 0
    rank = detection["signals"]["effective_rank@t=200"]
    assert rank["family"] == "jacobian" and rank["values"] == pytest.approx(measured["jacobian"]["effective_rank"][:, 1].tolist())


def test_the_sample_sets_load_in_the_modules_range(originals):
    x, y, clipped = load_sample_set(originals["dir"] / f"gen_data_with_w0_w{W}", originals["dir"] / f"gen_index_with_w0_w{W}")
    assert x.shape == (30, 1, 28, 28) and x.dtype == np.float32 and x.min() == -1 and x.max() == 1
    assert y.tolist() == list(range(10)) * 3 and 0 < clipped < 0.3


class Marker:
    """An object in a pickle: unpickling it would create a file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def malformed(folder: Path, kind: str) -> Path:
    state = reference_ddpm(0).state_dict()
    if kind == "wrong shape":
        state["nn_model.up1.model.0.weight"] = torch.zeros(4, 4, 2, 2)
    elif kind == "missing key":
        del state["nn_model.contextembed2.model.0.weight"]
    elif kind == "another schedule":
        state = reference_ddpm(0, betas=(1e-4, 0.03)).state_dict()
    elif kind == "an object":
        state["nn_model.extra"] = Marker(folder / "unpickled")
    elif kind == "the whole module":
        state = reference_ddpm(0)
    path = folder / f"model_0_w{W}.pth"
    torch.save(state, path)
    return path


MALFORMED = {
    "wrong shape": "nn_model.up1.model.0.weight of shape (4, 4, 2, 2), expected (32, 8, 2, 2)",
    "missing key": "missing nn_model.contextembed2.model.0.weight",
    "another schedule": "schedule buffer alpha_t[",
    "an object": "refused, it holds",
    "the whole module": "refused, it holds",
}


@pytest.mark.parametrize("kind", MALFORMED)
def test_a_malformed_checkpoint_is_one_error_naming_the_file_from_the_loader_and_the_parse_time_reader(tmp_path, kind):
    path = malformed(tmp_path, kind)
    for check in (load_original, check_checkpoint):
        with pytest.raises(GensynthError) as error:
            check(path, N_FEAT, N_CLASSES, N_T, BETAS)
        message = str(error.value)
        assert message.startswith(str(path)) and "\n" not in message and MALFORMED[kind] in message, (check.__name__, message)
    assert not (tmp_path / "unpickled").exists()  # nothing in the file ran
    # the Snakefile's check before any job reads it too
    override = f"madness:\n  data: {{image_size: 28}}\n  original: {{models_dir: {tmp_path}, n_feat: {N_FEAT}, n_T: {N_T}}}\n"
    message = config_error(override)
    assert str(path) in message and MALFORMED[kind] in message and "\n" not in message


def test_a_malformed_sample_set_is_one_error_naming_the_file(tmp_path):
    torch.save(torch.rand(5, 1, 28, 28), tmp_path / "images")
    torch.save(torch.arange(4), tmp_path / "labels")
    for check in (load_sample_set, check_sample_set):
        with pytest.raises(GensynthError, match=r"labels: labels of shape \(4,\): expected \(5,\)"):
            check(tmp_path / "images", tmp_path / "labels")


def test_the_originals_settings_are_checked_at_parse_time(originals, tmp_path):
    on = f"  original: {{models_dir: {originals['dir']}, n_feat: {N_FEAT}, n_T: {N_T}}}\n"
    assert "config key 'madness.data.image_size' = 16: expected 28 while madness.original.models_dir is set" in config_error("madness:\n" + on)
    assert "config key 'madness.jacobian.timesteps' = [50, 400]: expected timesteps in 1..original.n_T = 300" in config_error(
        "madness:\n  data: {image_size: 28}\n  jacobian: {timesteps: [50, 400]}\n" + on
    )
    wide = f"madness:\n  data: {{image_size: 28}}\n  original: {{models_dir: {originals['dir']}, n_feat: 16, n_T: {N_T}}}\n"
    assert "(its n_feat is 8)" in config_error(wide)
    (tmp_path / "sets").mkdir()
    shutil.copy(originals["dir"] / f"gen_data_with_w0_w{W}", tmp_path / "sets" / "gen_data_with_w0_w0.5")
    other_w = (
        f"madness:\n  data: {{image_size: 28}}\n  original: {{models_dir: {originals['dir']}, data_dir: {tmp_path / 'sets'}, n_feat: {N_FEAT}, n_T: {N_T}}}\n"
    )
    assert "gen_data_with_w0_w0.5: its w 0.5 is none of the checkpoints' (0.0)" in config_error(other_w)
    assert not any("original" in path for path in dag.final_outputs(default_config()["madness"]))  # off by default


def test_a_dry_run_with_the_groups_folders_lists_their_jobs(originals, project):
    shutil.copytree(originals["dir"], project / "originals")
    (project / "originals.yaml").write_text(
        f"madness:\n  data: {{image_size: 28}}\n  original: {{models_dir: originals, data_dir: originals, n_feat: {N_FEAT}, n_T: {N_T}}}\n"
    )
    output = snakemake(project, "-n", "-p", "--configfile", "originals.yaml", "--cores", "1", "--config", "modules=[madness]").stdout
    jobs = {re.match(r"(?:local)?rule (\w+):", block).group(1): block for block in job_blocks(output) if "rule madness_original" in block}
    assert set(jobs) == {"madness_original_jacobian", "madness_original_metrics", "madness_original_detect"}
    command = next(line for line in output.splitlines() if "madness_original_jacobian.py" in line)
    assert f"--models originals/model_0_w{W}.pth originals/model_1_w{W}.pth --generations 0 1 " in command
    assert f"--n-feat {N_FEAT} --n-classes 10 --n-t {N_T} --betas 0.0001 0.02" in command
    assert "gpu=1" in jobs["madness_original_jacobian"]
    assert f"results/madness/original/w{W}/detection_w{W}.json" in jobs["madness_original_detect"]
    metrics = next(line for line in output.splitlines() if "madness_original_metrics.py" in line)
    assert f"--labels originals/gen_index_with_w0_w{W} originals/gen_index_with_w1_w{W} --generations 0 1" in metrics
    detect = next(line for line in output.splitlines() if "madness_original_detect.py" in line)
    assert f"--metrics results/madness/original/w{W}/metrics_w{W}.json" in detect
