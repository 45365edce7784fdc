"""Jacobian spectrum of the denoiser: exact against a brute-force Jacobian, Lanczos against exact, stats formulas."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from gensynth.diffusion import UNetConfig, build_model
from gensynth.errors import GensynthError
from gensynth.madness import jacobian
from gensynth.madness.context_unet import ContextUnet
from gensynth.madness.jacobian import exact_spectrum, jacobian_spectrum, lanczos_spectrum, spectrum_stats

SIZE = 8  # 8x8x1: D = 64, small enough for a column-by-column Jacobian


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=["unet2d", "context_unet"])
def unet(request):
    """Each of the project's conditional UNets, tiny: UNet2DModel (attention on the second level,
    class embeddings) and the group's ContextUnet (batch norm, one-hot context)."""
    torch.manual_seed(0)
    architecture = {"architecture": request.param}
    if request.param == "context_unet":
        architecture.update(attention=False, num_train_timesteps=500)
    cfg = UNetConfig(sample_size=SIZE, in_channels=1, out_channels=1, num_classes=10, block_out_channels=(8, 16), **architecture)
    return build_model(cfg)


@pytest.fixture(scope="module")
def probes():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, 1, SIZE, SIZE, generator=generator)
    return x, torch.tensor([5, 120, 480]), torch.tensor([0, 7, 10])  # label 10 is the null token


def finite_difference_jacobian(unet, x, t, y, step=1e-5) -> np.ndarray:
    """J built column by column, J[:, i] = (eps(x + h e_i) - eps(x - h e_i)) / 2h, in float64.

    Independent of autograd, torch.func and the attention processor the method swaps in.
    """
    model = copy.deepcopy(unet).double().eval()
    x = x.double()
    dim = x.numel()
    columns = []
    with torch.no_grad():
        for i in range(dim):
            offset = torch.zeros(dim, dtype=torch.float64)
            offset[i] = step
            offset = offset.reshape(x.shape)
            plus = model((x + offset)[None], t[None], class_labels=y[None]).sample
            minus = model((x - offset)[None], t[None], class_labels=y[None]).sample
            columns.append(((plus - minus) / (2 * step)).reshape(-1))
    return torch.stack(columns, dim=1).numpy()  # (D, D)


def test_exact_matches_a_brute_force_jacobian(unet, probes):
    x, t, y = probes
    spectra = exact_spectrum(unet, x, t, y)
    assert spectra.shape == (3, SIZE * SIZE)
    for index in range(3):
        jac = finite_difference_jacobian(unet, x[index], t[index], y[index])
        expected = np.linalg.eigvalsh(jac.T @ jac)[::-1]
        # float32 Jacobian rows against a float64 reference: agreement to float32 precision
        np.testing.assert_allclose(spectra[index], expected, rtol=0, atol=2e-6 * expected[0])
        assert expected[0] > 1e-2  # a Jacobian worth comparing, not ~0


def test_exact_is_the_same_whatever_the_batching(unet, probes):
    x, t, y = probes
    together = exact_spectrum(unet, x, t, y)  # three probes vmapped in one pass
    chunked = exact_spectrum(unet, x, t, y, rows_per_pass=16)  # one probe per pass, 4 passes each
    alone = np.concatenate([exact_spectrum(unet, x[i : i + 1], t[i : i + 1], y[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(chunked, together, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-7)
    assert not np.allclose(together[0], together[1], rtol=1e-3)  # each probe has its own spectrum


def test_lanczos_top_k_matches_exact(unet, probes):
    x, t, y = probes
    exact = exact_spectrum(unet, x, t, y)
    counts: list[int] = []
    top = lanczos_spectrum(unet, x, t, y, k=10, products=counts)
    assert top.shape == (3, 10)
    np.testing.assert_allclose(top, exact[:, :10], rtol=1e-4)
    assert len(counts) == 3 and all(10 < c < 200 for c in counts)


def test_spectra_are_deterministic(unet, probes):
    x, t, y = probes
    np.testing.assert_array_equal(exact_spectrum(unet, x, t, y), exact_spectrum(unet, x, t, y))
    np.testing.assert_array_equal(lanczos_spectrum(unet, x[:1], t[:1], y[:1], k=5), lanczos_spectrum(unet, x[:1], t[:1], y[:1], k=5))


def test_auto_picks_exact_for_small_probes_and_lanczos_above_the_threshold(unet, probes, monkeypatch):
    x, t, y = probes
    assert jacobian_spectrum(unet, x[:1], t[:1], y[:1], k=5).shape == (1, SIZE * SIZE)
    monkeypatch.setattr(jacobian, "EXACT_MAX_DIM", SIZE * SIZE - 1)
    assert jacobian_spectrum(unet, x[:1], t[:1], y[:1], k=5).shape == (1, 5)
    assert jacobian_spectrum(unet, x[:1], t[:1], y[:1], method="exact", k=5).shape == (1, SIZE * SIZE)


def test_the_model_is_left_as_it_was(unet, probes):
    x, t, y = probes
    buffers = {name: buffer.clone() for name, buffer in unet.named_buffers()}
    unet.train()
    lanczos_spectrum(unet, x[:1], t[:1], y[:1], k=3)
    exact_spectrum(unet, x[:1], t[:1], y[:1])
    processors = [m.processor for m in unet.modules() if isinstance(m, Attention)]
    assert all(isinstance(p, AttnProcessor2_0) for p in processors)
    assert processors or isinstance(unet, ContextUnet)
    assert unet.training and all(p.requires_grad for p in unet.parameters())
    for name, buffer in unet.named_buffers():  # batch-norm statistics: the spectra ran in eval mode
        torch.testing.assert_close(buffer, buffers[name], rtol=0, atol=0)
    unet.eval()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x, t, y: (x[:, :, :4], t, y), "shape"),
        (lambda x, t, y: (x, t[:2], y), "timesteps"),
        (lambda x, t, y: (x, t.float(), y), "timesteps"),
        (lambda x, t, y: (x, t, y + 5), "labels"),
        (lambda x, t, y: (x * float("nan"), t, y), "finite"),
    ],
)
def test_bad_probes_are_one_clear_error(unet, probes, change, message):
    with pytest.raises(GensynthError, match=message):
        jacobian_spectrum(unet, *change(*probes))


def test_bad_method_or_k_is_one_clear_error(unet, probes):
    with pytest.raises(GensynthError, match="method 'svd'"):
        jacobian_spectrum(unet, *probes, method="svd")
    with pytest.raises(GensynthError, match="k = 64"):
        jacobian_spectrum(unet, *probes, method="lanczos", k=SIZE * SIZE)


def test_spectrum_stats_on_known_spectra():
    rank_one = spectrum_stats(np.array([4.0, 0.0, 0.0, 0.0]))
    assert rank_one == pytest.approx({"trace": 4.0, "top": 4.0, "participation_ratio": 1.0, "effective_rank": 1.0, "spectral_entropy": 0.0})

    flat = spectrum_stats(np.full(8, 0.5))
    assert flat == pytest.approx({"trace": 4.0, "top": 0.5, "participation_ratio": 8.0, "effective_rank": 8.0, "spectral_entropy": math.log(8)})

    two = spectrum_stats(np.array([3.0, 1.0]))
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert two == pytest.approx({"trace": 4.0, "top": 3.0, "participation_ratio": 16 / 10, "effective_rank": math.exp(entropy), "spectral_entropy": entropy})

    # rounding's tiny negatives count as zero; all zeros is a rank-0 matrix
    assert spectrum_stats(np.array([2.0, -1e-12]))["participation_ratio"] == pytest.approx(1.0)
    assert spectrum_stats(np.zeros(5)) == {"trace": 0.0, "top": 0.0, "participation_ratio": 0.0, "effective_rank": 0.0, "spectral_entropy": 0.0}


def test_spectrum_stats_rejects_bad_spectra():
    for bad in (np.array([]), np.ones((2, 2)), np.array([1.0, np.nan])):
        with pytest.raises(GensynthError, match="spectrum_stats"):
            spectrum_stats(bad)
