"""Every registered MCA model honours what timm's own model tests check."""
import pytest
import timm
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

import visionattn  # noqa: F401  (registers the models)
from visionattn.layers import MomentChannelAttention
from visionattn.models import PARAM_COUNTS, model_names

NAMES = model_names()
RESNETS = [n for n in NAMES if n.startswith("resnet")]
EXPECTED = sorted(
    [f"resnet{d}_mca_{v}" for d in (18, 34, 50, 101, 152) for v in "es"]
    + [f"resnet{d}d_mca_{v}" for d in (50, 101) for v in "es"]
    + ["shufflenetv2_x1_0_mca_e", "shufflenetv2_x1_0_mca_s"]
)
SMALL = 64  # timm tests run at reduced resolution too
# ResNet-152 takes 30-65 s a call in the four tests marked with it (measured on 2 shared cores)
SLOW_BIG = [pytest.param(n, marks=pytest.mark.slow) if n.startswith("resnet152") else n for n in NAMES]


def test_registry_lists_exactly_the_mca_models():
    assert sorted(timm.list_models("*mca*")) == EXPECTED
    assert sorted(NAMES) == sorted(EXPECTED + ["shufflenetv2_x1_0"])


@pytest.mark.parametrize("name", NAMES)
def test_pretrained_cfg_and_param_count(name):
    model = timm.create_model(name)
    cfg = model.pretrained_cfg
    assert cfg["tag"] == "untrained"
    assert tuple(cfg["mean"]) == IMAGENET_DEFAULT_MEAN and tuple(cfg["std"]) == IMAGENET_DEFAULT_STD
    assert cfg["input_size"] == (3, 224, 224) and cfg["num_classes"] == 1000
    modules = dict(model.named_modules())
    assert isinstance(modules[cfg["first_conv"]], torch.nn.Conv2d)
    assert modules[cfg["first_conv"]].in_channels == 3
    assert isinstance(modules[cfg["classifier"]], torch.nn.Linear)
    assert sum(p.numel() for p in model.parameters()) == PARAM_COUNTS[name]
    with pytest.raises(RuntimeError):
        timm.create_model(name, pretrained=True)  # no published weights: never a download


@pytest.mark.parametrize("name", RESNETS)
def test_mca_sits_in_every_block_with_the_named_variant(name):
    model = timm.create_model(name)
    blocks = [m for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for m in stage]
    variant = name[-1].upper()
    for block in blocks:
        assert isinstance(block.se, MomentChannelAttention)
        assert block.se.moments == (["mean", "std"] if variant == "E" else ["mean", "skew"])
        assert block.se.kernel_size == (11 if variant == "E" else 3)
    assert model.pretrained_cfg["first_conv"] == ("conv1.0" if "d_mca" in name else "conv1")


@pytest.mark.parametrize("variant", ["e", "s"])
def test_shufflenet_mca_before_every_channel_shuffle(variant):
    from visionattn.models.shufflenetv2 import InvertedResidual

    model = timm.create_model(f"shufflenetv2_x1_0_mca_{variant}")
    units = [m for m in model.modules() if isinstance(m, InvertedResidual)]
    assert len(units) == 4 + 8 + 4  # x1.0 stage repeats
    assert all(isinstance(u.attn, MomentChannelAttention) for u in units)
    # the attention sees the concatenated branches: as many channels as the unit outputs
    assert [u.attn.channels for u in units[:5]] == [116] * 4 + [232]
    # same as the plain network but for m*k+1 parameters per unit
    plain = PARAM_COUNTS["shufflenetv2_x1_0"]
    per_unit = 2 * (11 if variant == "e" else 3) + 1
    assert PARAM_COUNTS[f"shufflenetv2_x1_0_mca_{variant}"] == plain + 16 * per_unit


@pytest.mark.parametrize("name", SLOW_BIG)
@pytest.mark.parametrize("zero_init_last", [True, False])
def test_forward_backward_small_resolution(name, zero_init_last):
    # zero_init_last (timm's default) makes every block's pre-attention output constant at
    # init: the constant-channel case the moments must survive with finite gradients.
    model = timm.create_model(name, num_classes=7, zero_init_last=zero_init_last)
    model.train()
    x = torch.randn(2, 3, SMALL, SMALL)
    out = model(x)
    assert out.shape == (2, 7)
    out.mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    if not zero_init_last and "mca" in name:  # (with it, attention inputs are all zero, as for SE/ECA)
        assert any(
            p.grad.abs().sum() > 0 for n, p in model.named_parameters() if ".cmc." in n)


@pytest.mark.parametrize("name", NAMES)
def test_num_classes_in_chans_global_pool(name):
    x1 = torch.randn(1, 1, SMALL, SMALL)
    model = timm.create_model(name, num_classes=3, in_chans=1, global_pool="max").eval()
    with torch.no_grad():
        assert model(x1).shape == (1, 3)
    model.reset_classifier(5, "avg")
    with torch.no_grad():
        assert model(x1).shape == (1, 5)
    unpooled = timm.create_model(name, num_classes=0, global_pool="").eval()
    with torch.no_grad():
        feats = unpooled(torch.randn(1, 3, SMALL, SMALL))
    assert feats.shape == (1, unpooled.num_features, SMALL // 32, SMALL // 32)


@pytest.mark.parametrize("name", NAMES)
def test_features_only_matches_feature_info(name):
    model = timm.create_model(name, features_only=True).eval()
    info = model.feature_info
    with torch.no_grad():
        feats = model(torch.randn(1, 3, SMALL, SMALL))
    assert len(feats) == len(info.channels()) == 5
    for f, ch, red in zip(feats, info.channels(), info.reduction()):
        assert f.shape == (1, ch, SMALL // red, SMALL // red)
    sub = timm.create_model(name, features_only=True, out_indices=(2, 3))
    assert sub.feature_info.reduction() == info.reduction()[2:4]
    assert sub.feature_info.channels() == info.channels()[2:4]


@pytest.mark.parametrize("name", SLOW_BIG)
def test_forward_intermediates(name):
    model = timm.create_model(name).eval()
    x = torch.randn(1, 3, SMALL, SMALL)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        expected = model.forward_head(final)
        torch.testing.assert_close(expected, model(x))
        only = model.forward_intermediates(x, indices=2, intermediates_only=True)
    info = model.feature_info
    assert len(inter) == len(info)
    for f, d in zip(inter, info):
        assert f.shape == (1, d["num_chs"], SMALL // d["reduction"], SMALL // d["reduction"])
    assert len(only) == 2
    model.prune_intermediate_layers(indices=(1, 2), prune_head=True)
    with torch.no_grad():
        kept = model.forward_intermediates(x, indices=(1, 2), intermediates_only=True)
    for f, ref in zip(kept, inter[1:3]):
        torch.testing.assert_close(f, ref)


@pytest.mark.parametrize("name", NAMES)
def test_in_place_inference_matches_autograd_forward(name):
    """The registered models' attention scales its input in place at inference; that is only
    right if nothing else in timm's block reads that input, which this would catch."""
    model = timm.create_model(name).eval()
    x = torch.randn(2, 3, SMALL, SMALL)
    with torch.inference_mode():
        fast = model(x)
    reference = model(x.clone().requires_grad_(True)).detach()
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", SLOW_BIG)
def test_torchscript_matches_eager(name):
    model = timm.create_model(name).eval()
    scripted = torch.jit.script(model)
    x = torch.randn(1, 3, SMALL, SMALL)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", SLOW_BIG)
def test_grad_checkpointing_same_result(name):
    model = timm.create_model(name, num_classes=4).eval()  # eval: BatchNorm stats stay put
    x = torch.randn(2, 3, SMALL, SMALL, requires_grad=True)
    ref = model(x)
    ref.sum().backward()
    ref_grad = x.grad.clone()
    x.grad = None
    model.set_grad_checkpointing(True)
    out = model(x)
    out.sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(x.grad, ref_grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_path_round_trip(name, tmp_path):
    src = timm.create_model(name, num_classes=10)
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path / f"{name}.pth"
    torch.save(src.state_dict(), path)
    dst = timm.create_model(name, num_classes=10, checkpoint_path=str(path))
    for (k, a), (k2, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert k == k2
        torch.testing.assert_close(a, b, rtol=0, atol=0)
