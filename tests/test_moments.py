"""Moment statistics against an independent statement of the formulas (numpy, float64)."""
import numpy as np
import pytest
import torch

from visionattn.layers import MOMENT_NAMES, channel_moments, fused_moments
from visionattn.layers.moments import _reference_central_moments, central_moments, moments_from_central


def numpy_moments(x: np.ndarray, eps: float = 1e-5) -> dict:
    """Population statistics of each (b, c) plane, written out from the definitions."""
    b, c = x.shape[:2]
    flat = x.reshape(b, c, -1).astype(np.float64)
    mu = flat.mean(-1)
    d = flat - mu[..., None]
    var = (d ** 2).mean(-1)
    std = np.sqrt(var)
    return {
        "mean": mu,
        "var": var,
        "std": std,
        "skew": (d ** 3).mean(-1) / (std ** 3 + eps),
        "kurt": (d ** 4).mean(-1) / (var ** 2 + eps),
    }


def skewed_input(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    # exponential-ish, shifted and scaled per channel, so every moment is far from zero
    x = torch.rand(shape, generator=g).clamp_min(1e-6).log().neg()
    return x * torch.linspace(0.5, 3.0, shape[1]).view(1, -1, 1, 1) - 1.0


SHAPES = [(2, 16, 7, 9), (1, 64, 56, 56), (3, 5, 1, 1), (2, 8, 3, 33)]


@pytest.fixture(params=["fused", "reference"])
def central(request):
    if request.param == "fused":
        if fused_moments.load() is None:
            pytest.skip("fused kernel could not be built here")
        return central_moments
    return _reference_central_moments


@pytest.mark.parametrize("shape", SHAPES)
def test_all_moments_match_definitions(shape, central):
    x = skewed_input(shape)
    expected = numpy_moments(x.numpy())
    got = moments_from_central(central(x, 4), list(MOMENT_NAMES))
    for i, name in enumerate(MOMENT_NAMES):
        np.testing.assert_allclose(got[:, i].numpy(), expected[name], rtol=2e-5, atol=2e-5, err_msg=name)


def test_channel_moments_any_subset_and_order():
    x = skewed_input((2, 6, 5, 5))
    ref = numpy_moments(x.numpy())
    for names in [("skew",), ("kurt", "mean"), ("var", "std", "mean"), ("mean", "std", "skew", "kurt")]:
        out = channel_moments(x, names)
        assert out.shape == (2, len(names), 6) and out.dtype == torch.float32
        for i, name in enumerate(names):
            np.testing.assert_allclose(out[:, i].numpy(), ref[name], rtol=2e-5, atol=2e-5)


def test_unknown_moment_is_named():
    with pytest.raises(ValueError, match="median"):
        channel_moments(torch.randn(1, 2, 3, 3), ("mean", "median"))


@pytest.mark.parametrize("requires_grad", [False, True])
def test_inference_and_autograd_paths_agree(requires_grad):
    x = skewed_input((2, 32, 14, 14)).requires_grad_(requires_grad)
    names = ["mean", "std", "var", "skew", "kurt"]
    expected = numpy_moments(x.detach().numpy())
    out = channel_moments(x, names)
    for i, name in enumerate(names):
        np.testing.assert_allclose(out[:, i].detach().numpy(), expected[name], rtol=2e-5, atol=2e-5)


def test_gradients_match_finite_differences():
    # float64 through the same code path; gradcheck compares with numerical derivatives
    x = skewed_input((2, 3, 4, 5)).double().requires_grad_(True)
    for names in [("mean", "std"), ("mean", "skew"), ("var", "kurt")]:
        assert torch.autograd.gradcheck(lambda t: channel_moments(t, names), (x,), eps=1e-6, atol=1e-5)


def test_fused_backward_equals_reference_backward():
    if fused_moments.load() is None:
        pytest.skip("fused kernel could not be built here")
    x = skewed_input((2, 16, 9, 9))
    w = torch.randn(2, 4, 16)
    grads = []
    for fn in (central_moments, _reference_central_moments):
        xx = x.clone().requires_grad_(True)
        (fn(xx, 4) * w.transpose(1, 2)).sum().backward()
        grads.append(xx.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("fill", [0.0, 3.5, -1e4])
def test_constant_channel_values_and_gradients_are_finite(fill):
    x = torch.randn(2, 4, 6, 6)
    x[:, 1] = fill  # e.g. a zero-initialised last BatchNorm
    x.requires_grad_(True)
    out = channel_moments(x, MOMENT_NAMES)
    assert torch.isfinite(out).all()
    assert out[:, 1, 1].abs().max() < 1e-3  # std of a constant channel ~ 0
    assert out[:, 3, 1].abs().max() < 1e-3  # skewness ~ 0
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_accumulate_in_float32(dtype):
    x = (skewed_input((2, 8, 16, 16)) * 2500).clamp(-1e4, 1e4)  # values up to 1e4
    out = channel_moments(x.to(dtype), ("mean", "std", "skew", "kurt"))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    ref = numpy_moments(x.to(dtype).float().numpy())
    # x**3 for x ~ 1e4 overflows fp16 (max 65504); float32 accumulation keeps it exact-ish
    np.testing.assert_allclose(out[:, 2].numpy(), ref["skew"], rtol=1e-3, atol=1e-3)
