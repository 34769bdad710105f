"""MomentChannelAttention against the published formulation, written out independently."""

import numpy as np
import pytest
import torch
from torch import nn

from visionattn.layers import MomentChannelAttention, eca_kernel_size


def published_mca(x: np.ndarray, moments, weight: np.ndarray, bias: float) -> np.ndarray:
    """Jiang et al. (AAAI 2024), authors' definitions: population std, skewness
    E[(x-mu)^3] / (std^3 + 1e-5); a zero-padded 1-D convolution over channels with the
    moments as input channels; sigmoid gate. Plain numpy, float64."""
    b, c = x.shape[:2]
    flat = x.reshape(b, c, -1).astype(np.float64)
    mu = flat.mean(-1)
    std = np.sqrt(((flat - mu[..., None]) ** 2).mean(-1))
    skew = ((flat - mu[..., None]) ** 3).mean(-1) / (std ** 3 + 1e-5)
    stats = np.stack([{"mean": mu, "std": std, "skew": skew}[m] for m in moments], axis=1)  # (B, m, C)
    k = weight.shape[-1]
    pad = (k - 1) // 2
    padded = np.pad(stats, ((0, 0), (0, 0), (pad, pad)))
    logits = np.full((b, c), bias, dtype=np.float64)
    for ci in range(c):
        logits[:, ci] += (padded[:, :, ci:ci + k] * weight[0][None]).sum(axis=(1, 2))
    gate = 1.0 / (1.0 + np.exp(-logits))
    return x.astype(np.float64) * gate[:, :, None, None]


VARIANT_MOMENTS = {"E": ("mean", "std"), "S": ("mean", "skew"), "T": ("mean", "std", "skew")}


@pytest.mark.parametrize("variant", ["E", "S", "T"])
@pytest.mark.parametrize("kernel_size", [None, 1, 5, "auto"])
@pytest.mark.parametrize("mode", ["inference", "inference in place", "train", "train in place", "script"])
@pytest.mark.parametrize("batch", [1, 2])
def test_matches_published_formulation(variant, kernel_size, mode, batch):
    # 24 channels: at inference the CPU kernel splits them into blocks whose CMC windows
    # reach into their neighbours' channels (k = 11 reaches five), which this covers.
    torch.manual_seed(1)
    x = torch.randn(batch, 24, 7, 6) * torch.linspace(0.2, 3, 24).view(1, -1, 1, 1) + torch.randn(1, 24, 1, 1)
    x = x + 0.5 * x.pow(2)  # skewed, so the third moment matters
    mca = MomentChannelAttention(24, variant=variant, kernel_size=kernel_size, inplace=mode.endswith("in place"))
    with torch.no_grad():
        mca.cmc.weight.normal_(0, 0.5)
        mca.cmc.bias.fill_(0.1)
    expected = published_mca(x.numpy(), VARIANT_MOMENTS[variant], mca.cmc.weight.detach().numpy(),
                             float(mca.cmc.bias.detach()))
    if mode == "script":
        mca = torch.jit.script(mca)
    if mode.startswith("train"):
        x_in = x.clone().requires_grad_(True)
        out = mca(x_in).detach()
        assert torch.equal(x_in.detach(), x)  # autograd needs x, so never in place
    else:
        x_in = x.clone()
        with torch.no_grad():
            out = mca(x_in)
        assert (out.data_ptr() == x_in.data_ptr()) == (mode == "inference in place")
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_inference_kernel_matches_module_path_in_half(dtype):
    """The one-call inference path rounds the gate to x's dtype before the product, as the
    module path (moments, CMC, sigmoid, ``.to(x.dtype)``, product) does."""
    torch.manual_seed(0)
    mca = MomentChannelAttention(40, variant="T", kernel_size=5)
    nn.init.normal_(mca.cmc.weight)
    x = (torch.randn(3, 40, 6, 5) * 50).to(dtype)
    with torch.no_grad():
        fast = mca(x)
    slow = mca(x.requires_grad_(True)).detach()  # autograd path: plain torch ops
    assert fast.dtype == slow.dtype == dtype
    torch.testing.assert_close(fast.float(), slow.float(), rtol=0, atol=0)


def test_in_place_keeps_gradients_of_the_out_of_place_block():
    torch.manual_seed(0)
    plain = MomentChannelAttention(16, "T")
    inplace = MomentChannelAttention(16, "T", inplace=True)
    inplace.load_state_dict(plain.state_dict())
    assert "inplace=True" in repr(inplace)
    grads = []
    for block in (plain, inplace):
        x = torch.randn(2, 16, 5, 5, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
        block(x).pow(2).sum().backward()
        grads.append((x.grad, block.cmc.weight.grad))
    torch.testing.assert_close(grads[0], grads[1])


def test_default_and_auto_kernel_sizes():
    assert MomentChannelAttention(64, "E").kernel_size == 11
    assert MomentChannelAttention(64, "S").kernel_size == 3
    # ECA-Net: k = |log2(C)/2 + 1/2| rounded up to odd
    for c, k in [(64, 3), (256, 5), (512, 5), (2048, 7)]:
        assert eca_kernel_size(c) == k
        assert MomentChannelAttention(c, "S", kernel_size="auto").kernel_size == k


@pytest.mark.parametrize("variant,m", [("E", 2), ("S", 2), ("T", 3), (("mean", "kurt", "var"), 3)])
def test_one_conv1d_with_m_times_k_plus_one_parameters(variant, m):
    mca = MomentChannelAttention(256, variant, kernel_size=7)
    convs = [mod for mod in mca.modules() if isinstance(mod, nn.Conv1d)]
    assert len(convs) == 1 and convs[0].in_channels == m and convs[0].out_channels == 1
    assert sum(p.numel() for p in mca.parameters()) == m * 7 + 1


def test_factory_kwargs_and_no_host_library_names():
    mca = MomentChannelAttention(channels=128, variant="T", kernel_size="auto", dtype=torch.float64)
    assert mca.channels == 128 and mca.cmc.weight.dtype == torch.float64
    # mmdet's conventions (the `_abbr_` module name, the `in_channels` argument) live in visionattn.mmdet
    assert not hasattr(MomentChannelAttention, "_abbr_")
    with pytest.raises(TypeError):
        MomentChannelAttention(in_channels=32)


@pytest.mark.parametrize("kwargs,match", [
    (dict(variant="X"), "unknown MCA variant 'X'"),
    (dict(variant=("mean", "median")), "median"),
    (dict(variant=()), "non-empty"),
    (dict(kernel_size=4), "odd"),
    (dict(kernel_size="big"), "odd"),
])
def test_bad_arguments_say_what_is_allowed(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MomentChannelAttention(64, **kwargs)


def test_auto_kernel_needs_channels():
    with pytest.raises(ValueError, match="channel count"):
        MomentChannelAttention(variant="S", kernel_size="auto")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("variant", ["E", "S", "T"])
def test_autocast_large_values_stay_finite(dtype, variant):
    mca = MomentChannelAttention(32, variant)
    x = (torch.randn(2, 32, 8, 8) * 4000).clamp(-1e4, 1e4)
    x[:, 0] = 1e4  # constant channel at the extreme
    x.requires_grad_(True)
    with torch.autocast("cpu", dtype=dtype):
        out = mca(x.to(dtype))
    assert out.dtype == dtype and torch.isfinite(out.float()).all()
    if dtype == torch.bfloat16:
        # fp16 gradients of 1e4-sized activations overflow in any block (sum over H*W of
        # x * grad > 65504): that is GradScaler's job, not the block's.
        out.float().sum().backward()
        assert torch.isfinite(x.grad).all()


def test_constant_channel_gradients_finite_through_block():
    mca = MomentChannelAttention(8, "T")
    x = torch.zeros(2, 8, 5, 5, requires_grad=True)  # timm's zero_init_last gives exactly this
    mca(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in mca.parameters())


def test_mean_only_is_eca():
    """ECA-Net is MCA with the mean alone: same output as timm's EcaModule with equal weights."""
    from timm.layers import EcaModule

    eca = EcaModule(kernel_size=5)  # channels=None: timm would derive k from C
    mca = MomentChannelAttention(64, ("mean",), kernel_size=5)
    with torch.no_grad():
        mca.cmc.weight.copy_(eca.conv.weight)
        mca.cmc.bias.zero_()  # timm's ECA conv has no bias
    x = torch.randn(2, 64, 6, 6)
    torch.testing.assert_close(mca(x), eca(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("inplace", [False, True])
def test_compile_and_export_trace_the_whole_block(inplace):
    """torch.compile and torch.export cannot see into the CPU kernel, so while they trace, the
    block uses plain torch ops: one graph, no break, and the eager result."""
    torch.manual_seed(0)
    mca = MomentChannelAttention(32, "T", inplace=inplace).eval()
    nn.init.normal_(mca.cmc.weight)
    x = torch.randn(2, 32, 6, 6)
    with torch.no_grad():
        expected = mca(x.clone())
        compiled = torch.compile(mca, backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(x.clone()), expected)
    exported = torch.export.export(mca, (x.clone(),))
    torch.testing.assert_close(exported.module()(x.clone()), expected)
