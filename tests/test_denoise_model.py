"""MambaUV and its scans: the fused kernel against the reference and mambapy, gradients, FiLM, batch
independence, and the config and weights round-trips."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import ENV
from gensynth.denoise import scan
from gensynth.denoise.mamba import MambaStack, MambaUV, MambaUVConfig
from gensynth.errors import GensynthError
from gensynth.io import save_checkpoint


@pytest.fixture
def mambapy():
    return pytest.importorskip("mambapy.mamba")  # the reference, a test extra


def scan_inputs(batch=3, length=23, channels=10, n_state=6, dtype=torch.float32, seed=0):
    """Random (x, Δ, A, B, C, D) shaped as the block passes them, each requiring grad."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=dtype)

    x = randn(batch, length, channels)
    delta = F.softplus(randn(batch, length, channels) - 1)  # positive step sizes, some large
    A = -torch.exp(randn(channels, n_state))  # negative
    B, C, D = randn(batch, length, n_state), randn(batch, length, n_state), randn(channels)
    return [t.requires_grad_() for t in (x, delta, A, B, C, D)]


def small_config(**overrides) -> MambaUVConfig:
    values = {"dose_dim": 3, "d_model": 16, "n_layers": 2, "d_state": 4, **overrides}
    return MambaUVConfig(**values)


def conditioned_model(seed=0, **overrides) -> MambaUV:
    """A MambaUV whose zero-initialised FiLM generator and head are made nonzero (as training would)."""
    torch.manual_seed(seed)
    model = MambaUV(small_config(**overrides))
    for parameter in (model.film.weight, model.film.bias, model.head.weight):
        torch.nn.init.normal_(parameter, std=0.3)
    return model.eval()


def test_fast_exp_matches_numpy_to_float32_precision():
    values = np.linspace(-87.0, 0.0, 200_001, dtype=np.float32)
    exact = np.exp(values.astype(np.float64))
    relative = np.abs(scan.fast_exp_nonpositive(values) - exact) / exact
    assert relative.max() < 4 * np.finfo(np.float32).eps  # a few float32 ulps, computed in float32
    assert np.abs(scan.fast_exp_nonpositive(np.array([-200.0, -1e30], np.float32))).max() < 1e-37  # floored, not NaN


@pytest.mark.parametrize("length", [1, 23])
def test_fused_scan_equals_reference(length):
    inputs = scan_inputs(length=length)
    expected = scan.selective_scan_reference(*inputs)
    fused = scan.selective_scan(*inputs, backend="fused")
    assert fused.shape == expected.shape
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-5)


def test_fused_scan_gradients_equal_the_reference_autograd():
    inputs = scan_inputs()
    grad_y = torch.randn(inputs[0].shape, generator=torch.Generator().manual_seed(1))
    expected = torch.autograd.grad(scan.selective_scan_reference(*inputs), inputs, grad_y)
    fused = torch.autograd.grad(scan.selective_scan(*inputs, backend="fused"), inputs, grad_y)
    for name, ours, theirs in zip(["x", "delta", "A", "B", "C", "D"], fused, expected):
        assert ours.shape == theirs.shape, name
        assert (ours - theirs).abs().max() <= 1e-4 * theirs.abs().max(), name


def test_fused_conv_silu_and_rms_norm_equal_torch_with_gradients():
    """Against torch's autograd in float32 (their backwards are short; gradcheck's float64 kernels would double
    the tests' compile time on a cold numba cache)."""
    generator = torch.Generator().manual_seed(0)
    xz = torch.randn(3, 17, 20, generator=generator).requires_grad_()  # x: half of it, a strided view like in_proj's
    weight, bias = torch.randn(10, 4, generator=generator).requires_grad_(), torch.randn(10, generator=generator).requires_grad_()
    x, norm_weight = xz[..., :10], bias.repeat(2)
    cases = {
        "conv": ((xz, weight, bias), scan.causal_conv_silu(x, weight, bias, "fused"), scan.causal_conv_silu_reference(x, weight, bias)),
        "norm": ((xz, bias), scan.rms_norm(xz, norm_weight, 1e-5, "fused"), F.rms_norm(xz, (20,), norm_weight, 1e-5)),
    }
    for name, (inputs, ours, theirs) in cases.items():
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5, msg=name)
        grad_out = torch.randn(theirs.shape, generator=torch.Generator().manual_seed(1))
        for mine, expected in zip(torch.autograd.grad(ours, inputs, grad_out), torch.autograd.grad(theirs, inputs, grad_out)):
            torch.testing.assert_close(mine, expected, rtol=1e-5, atol=1e-5, msg=name)


def test_model_gradients_with_fused_kernels_equal_the_reference():
    """The whole bidirectional, FiLM-conditioned MambaUV: every parameter's gradient, fused against reference."""
    generator = torch.Generator().manual_seed(9)
    spectra, dose = torch.randn(2, 33, generator=generator), torch.randn(2, 3, generator=generator)
    grads = {}
    for backend in ("fused", "reference"):
        model = conditioned_model().set_scan_backend(backend)
        (model(spectra, dose) - spectra).square().mean().backward()
        grads[backend] = {name: parameter.grad for name, parameter in model.named_parameters()}
    assert len(grads["fused"]) == len(grads["reference"]) > 30
    for name, expected in grads["reference"].items():
        assert (grads["fused"][name] - expected).abs().max() <= 1e-4 * expected.abs().max() + 1e-7, name


def copied_pair(mambapy, pscan=True):
    """mambapy's Mamba and the project's causal MambaStack with the same weights."""
    torch.manual_seed(0)
    theirs = mambapy.Mamba(mambapy.MambaConfig(d_model=16, n_layers=2, d_state=4, pscan=pscan))
    ours = MambaStack(small_config(dose_dim=0, bidirectional=False))
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


@pytest.mark.parametrize("backend", ["fused", "reference"])
@pytest.mark.parametrize("pscan", [True, False])
def test_causal_stack_equals_mambapy(mambapy, backend, pscan):
    theirs, ours = copied_pair(mambapy, pscan=pscan)
    x = torch.randn(3, 37, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (ours.set_scan_backend(backend)(x) - theirs(x)).abs().max() <= 1e-4


def test_causal_stack_gradients_equal_mambapy(mambapy):
    theirs, ours = copied_pair(mambapy)
    x = torch.randn(2, 29, 16, generator=torch.Generator().manual_seed(3))
    theirs(x).square().sum().backward()
    ours.set_scan_backend("fused")(x).square().sum().backward()
    their_grads = dict(theirs.named_parameters())
    for name, parameter in ours.named_parameters():
        expected = their_grads[name].grad
        assert (parameter.grad - expected).abs().max() <= 1e-4 * expected.abs().max(), name


def test_bidirectional_sees_both_sides_and_causal_only_the_past():
    x = torch.randn(1, 30, 16, generator=torch.Generator().manual_seed(4))
    later = x.clone()
    later[:, 20:] += 1.0  # change only the long-wavelength end
    for bidirectional in (False, True):
        torch.manual_seed(0)
        stack = MambaStack(small_config(dose_dim=0, bidirectional=bidirectional))
        with torch.no_grad():
            change = (stack(later) - stack(x))[:, :20].abs().max()
        assert (change > 1e-3) == bidirectional


def test_film_makes_the_output_depend_on_the_dose():
    spectra = torch.randn(2, 40, generator=torch.Generator().manual_seed(5))
    dose_a, dose_b = torch.zeros(2, 3), torch.ones(2, 3)
    conditioned = conditioned_model()
    with torch.no_grad():
        assert (conditioned(spectra, dose_a) - conditioned(spectra, dose_b)).abs().max() > 1e-3
        conditioned.film.weight.zero_()  # a model without a dose effect: FiLM is constant in the dose
        torch.testing.assert_close(conditioned(spectra, dose_a), conditioned(spectra, dose_b), rtol=0, atol=0)


def test_initial_model_is_the_identity():
    torch.manual_seed(0)
    spectra = torch.rand(3, 50) * 100
    with torch.no_grad():
        assert torch.equal(MambaUV(small_config())(spectra, torch.randn(3, 3)), spectra)


def test_output_follows_each_spectrum_affine_scaling():
    """Per-spectrum standardisation inside the model: a*s + c denoises to a*model(s) + c."""
    model = conditioned_model()
    spectra = torch.randn(2, 40, generator=torch.Generator().manual_seed(6))
    dose = torch.randn(2, 3, generator=torch.Generator().manual_seed(7))
    scale, offset = torch.tensor([[1e3], [1e-3]]), torch.tensor([[5e3], [-2e-3]])
    with torch.no_grad():
        transformed, expected = model(scale * spectra + offset, dose), scale * model(spectra, dose) + offset
    assert ((transformed - expected).abs() / scale).max() < 1e-4
    assert ((model(spectra, dose) - spectra).abs()).max() > 1e-2  # the model does change spectra


def test_output_of_a_spectrum_does_not_depend_on_its_batch():
    model = conditioned_model()
    generator = torch.Generator().manual_seed(8)
    spectra, dose = torch.randn(6, 40, generator=generator), torch.randn(6, 3, generator=generator)
    with torch.no_grad():
        whole = model(spectra, dose)
        alone = model(spectra[2:3], dose[2:3])
        shuffled = model(spectra[[5, 2, 0]], dose[[5, 2, 0]])
    torch.testing.assert_close(alone[0], whole[2], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(shuffled[1], whole[2], rtol=1e-6, atol=1e-6)


def test_config_round_trip_and_checkpoint_with_weights_only(tmp_path):
    config = small_config(dt_rank=3, bidirectional=False)
    values = config.to_dict()
    assert json.loads(json.dumps(values)) == values  # plain values only
    assert MambaUVConfig.from_dict(values) == config
    with pytest.raises(GensynthError, match="unknown key"):
        MambaUVConfig.from_dict({**values, "d_modle": 8})
    with pytest.raises(GensynthError, match="d_state"):
        MambaUVConfig(dose_dim=2, d_state=0)

    model = conditioned_model(dt_rank=3, bidirectional=False)
    save_checkpoint(tmp_path / "model.pt", {"config": values, "state_dict": model.state_dict()})
    loaded = torch.load(tmp_path / "model.pt", weights_only=True)
    restored = MambaUV(MambaUVConfig.from_dict(loaded["config"]))
    restored.load_state_dict(loaded["state_dict"])
    spectra, dose = torch.randn(2, 30), torch.randn(2, 3)
    with torch.no_grad():
        assert torch.equal(restored.eval()(spectra, dose), model(spectra, dose))


def test_scan_backend_choice():
    x = torch.zeros(1, 2, 3)
    assert scan.resolve_backend("auto", x) == "fused"
    assert scan.resolve_backend("reference", x) == "reference"
    assert scan.resolve_backend("auto", x.half()) == "reference"  # the kernels are float32/float64 only
    with pytest.raises(ValueError, match="expected one of"):
        scan.resolve_backend("numba", x)
    with pytest.raises(ValueError, match="expected one of"):
        MambaStack(small_config()).set_scan_backend("fast")
    if scan.mamba_ssm_scan is None:
        with pytest.raises(ValueError, match="mamba-ssm"):
            scan.resolve_backend("cuda", x)


def test_every_process_runs_the_kernels_from_numbas_cache_never_its_own_compile(monkeypatch):
    """Kernels a process compiled itself round differently from the same kernels loaded from the cache, so
    a cold cache is filled by a child process first, and this process loads what the child wrote."""
    from gensynth.denoise import kernels

    calls = []
    monkeypatch.setattr(kernels, "kernels_cached", lambda: False)
    monkeypatch.setattr(kernels, "compile_into_cache", lambda: calls.append("child"))
    monkeypatch.setattr(scan, "warm_up", lambda: calls.append("load"))
    kernels.warm_up_kernels("cpu")
    assert calls == ["child", "load"]
    monkeypatch.setattr(kernels, "kernels_cached", lambda: True)
    kernels.warm_up_kernels("cpu")
    assert calls == ["child", "load", "load"], "a warm cache needs no child"
    monkeypatch.undo()
    check = "from gensynth.denoise import kernels, scan; kernels.warm_up_kernels('cpu'); print(sum(len(k.stats.cache_misses) for k in scan.KERNELS))"
    fresh = subprocess.run([sys.executable, "-c", check], env=ENV, capture_output=True, text=True, check=True, timeout=600)
    assert fresh.stdout.split()[-1] == "0", "a fresh process compiled kernels itself"
