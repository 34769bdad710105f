"""FEDN model package: module shapes, exactness of window attention, linear memory, targets,
losses, NMS, ablations and a tiny overfit. CPU only, small dims, whole file well under a minute."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from visionattn.features.frame_encoder import FrameEncoder
from visionattn.models.fedn import FEDN, FEDNConfig
from visionattn.models.fedn.heads import FEDNHeads
from visionattn.models.fedn.losses import diou_loss_1d, sigmoid_focal_loss
from visionattn.models.fedn.neck import TemporalPyramidNeck
from visionattn.models.fedn.postprocess import hard_nms, postprocess_video, soft_nms, suppress_nested
from visionattn.models.fedn.segment_attention import SegmentAttention
from visionattn.models.fedn.targets import assign_targets, make_points
from visionattn.models.fedn.window_attention import (
    FullAttention,
    LocalMultiheadAttention,
    SlidingWindowAttention,
    local_attention,
)
from visionattn.utils import UserError

D, C = 8, 16


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The 2 cores are shared with other jobs; on these small tensors a second intra-op thread
    # mostly waits for the other and made the file several times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_config(**kwargs) -> FEDNConfig:
    base = dict(feature_dim=D, embed_dim=C, num_heads=2, segment_length=8, window_size=9)
    base.update(kwargs)
    return FEDNConfig(**base)


def prefix_mask(lengths, T) -> torch.Tensor:
    return torch.arange(T)[None] < torch.tensor(lengths)[:, None]


def gt(segments, types, emotions):
    return {"segments": torch.tensor(segments, dtype=torch.float32).view(-1, 2),
            "types": torch.tensor(types, dtype=torch.long), "emotions": torch.tensor(emotions, dtype=torch.long)}


# ---------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("T", [1000, 333])
def test_segment_attention_shapes_and_weights(T):
    seg = SegmentAttention(C, num_heads=2, segment_length=16)
    torch.nn.init.normal_(seg.score[-1].weight)  # non-uniform weights
    x, mask = torch.randn(2, T, C), prefix_mask([T, T // 2 + 3], T)
    out = seg(x, mask)
    assert out.shape == (2, T, C)
    assert torch.all(out[1, T // 2 + 3:] == 0)
    w = seg.frame_weights(x, mask)
    assert w.shape == (2, T)
    # softmax weights average 1 over the valid frames of each full segment
    assert torch.allclose(w[0, :16].sum(), torch.tensor(16.0), atol=1e-4)
    assert torch.all(w[1, T // 2 + 3:] == 0)


@pytest.mark.parametrize("T", [1000, 333])
def test_sliding_window_stage_neck_heads_shapes(T):
    stage = SlidingWindowAttention(C, num_heads=2, window_size=9)
    neck = TemporalPyramidNeck(C, num_levels=6, num_input_levels=3, num_heads=2, window_size=9)
    heads = FEDNHeads(C, num_levels=6, num_types=2, num_emotions=4, num_heads=2, window_size=9)
    x, mask = torch.randn(2, C, T), prefix_mask([T, 101], T)
    feats, masks = stage(x, mask)
    lengths = [math.ceil(T / 2 ** l) for l in range(6)]
    assert [f.shape for f in feats] == [(2, C, n) for n in lengths[:3]]
    feats, masks = neck(feats, masks)
    assert [f.shape for f in feats] == [(2, C, n) for n in lengths]
    assert [m.shape for m in masks] == [(2, n) for n in lengths]
    assert all(torch.equal(m, mask[:, :: 2 ** l]) for l, m in enumerate(masks))
    out = heads(feats, masks)
    assert [t.shape for t in out["type_logits"]] == [(2, n, 2) for n in lengths]
    assert [t.shape for t in out["emotion_logits"]] == [(2, n, 4) for n in lengths]
    assert [t.shape for t in out["offsets"]] == [(2, n, 2) for n in lengths]
    assert all((o >= 0).all() for o in out["offsets"])


@pytest.mark.parametrize("T", [1000, 333])
def test_temporal_outputs_and_padding_invariance(T):
    model = FEDN(small_config()).eval()
    x, mask = torch.randn(2, T, D), prefix_mask([T, 150], T)
    out = model.temporal(x, mask)
    assert [t.shape for t in out["type_logits"]] == [(2, math.ceil(T / 2 ** l), 2) for l in range(6)]
    assert out["strides"] == [1, 2, 4, 8, 16, 32]
    assert out["lengths"].tolist() == [T, 150]
    # The second video alone gives the same outputs as padded inside the batch.
    alone = model.temporal(x[1:, :150])
    for level in range(6):
        n = alone["type_logits"][level].shape[1]
        for key in ("type_logits", "emotion_logits", "offsets"):
            assert torch.allclose(out[key][level][1, :n], alone[key][level][0], atol=1e-5), (key, level)


# ---------------------------------------------------------------------------- window attention

def test_local_attention_equals_banded_full_attention():
    B, H, T, d, w = 2, 3, 37, 8, 9
    q, k, v = (torch.randn(B, H, T, d) for _ in range(3))
    mask = prefix_mask([T, 23], T)
    out = local_attention(q, k, v, mask, w // 2)

    idx = torch.arange(T)
    allowed = ((idx[:, None] - idx[None]).abs() <= w / 2)[None, None] & mask[:, None, None, :]
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(d)
    ref = scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v
    valid = mask[:, None, :, None].expand_as(ref)
    assert torch.allclose(out[valid], ref[valid], atol=1e-5)
    assert torch.all(out[~valid] == 0)


def test_window_covering_everything_equals_full_attention_module():
    local = LocalMultiheadAttention(C, num_heads=2, window_size=81)
    full = FullAttention(C, num_heads=2)
    full.load_state_dict(local.state_dict())
    x, mask = torch.randn(2, C, 40), prefix_mask([40, 27], 40)
    assert torch.allclose(local(x, mask), full(x, mask), atol=1e-5)


class MaxNumel(TorchDispatchMode):
    """Records the largest tensor any op produces."""

    def __init__(self) -> None:
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.max_numel = max(self.max_numel, t.numel())
        return out


def largest_intermediate(config: FEDNConfig, T: int) -> int:
    model = FEDN(config).eval()
    x = torch.randn(1, T, D)
    with torch.no_grad(), MaxNumel() as probe:
        model.temporal(x)
    return probe.max_numel


def test_memory_grows_linearly_with_window_attention():
    small, large = largest_intermediate(small_config(), 1024), largest_intermediate(small_config(), 4096)
    assert 3.5 < large / small < 4.5
    assert large < 4096 * 4096 / 16
    # The probe does see quadratic tensors: the "full" variant builds (1, heads, T, T) scores.
    assert largest_intermediate(small_config(attention="full"), 512) >= 2 * 512 * 512


# ---------------------------------------------------------------------------- losses

def test_diou_loss_hand_cases():
    same = diou_loss_1d(torch.tensor([[2.0, 7.0]]), torch.tensor([[2.0, 7.0]]))
    assert torch.allclose(same, torch.zeros(1), atol=1e-6)
    # [0, 1] vs [3, 4]: IoU 0, centres 0.5 and 3.5, enclosing 4 -> 1 + 9 / 16
    disjoint = diou_loss_1d(torch.tensor([[0.0, 1.0]]), torch.tensor([[3.0, 4.0]]))
    assert torch.allclose(disjoint, torch.tensor([1 + 9 / 16]))
    assert disjoint.item() > 1
    # [-1, 1] vs [0, 4]: I 1, U 5, centres 0 and 2, enclosing 5 -> 1 - 0.2 + 4 / 25
    overlap = diou_loss_1d(torch.tensor([[-1.0, 1.0]]), torch.tensor([[0.0, 4.0]]))
    assert torch.allclose(overlap, torch.tensor([0.96]))


def test_sigmoid_focal_loss_formula():
    logits, targets = torch.tensor([2.0, -1.0]), torch.tensor([1.0, 1.0])
    p = torch.sigmoid(logits)
    expected = -0.25 * (1 - p) ** 2 * torch.log(p)
    assert torch.allclose(sigmoid_focal_loss(logits, targets), expected)
    neg = sigmoid_focal_loss(torch.tensor([0.5]), torch.tensor([0.0]))
    q = torch.sigmoid(torch.tensor([0.5]))
    assert torch.allclose(neg, -0.75 * q ** 2 * torch.log(1 - q))


def test_loss_normaliser_and_empty_ground_truth():
    model = FEDN(small_config())
    out = model.temporal(torch.randn(1, 64, D))
    losses = model.loss(out, [gt([], [], [])])
    assert losses["num_positives"] == 0
    losses["loss"].backward()  # works without any positive
    assert torch.allclose(model.criterion.normalizer, torch.tensor(0.9 * 100 + 0.1 * 1))
    model.eval()
    model.loss(model.temporal(torch.randn(1, 64, D)), [gt([[10, 20]], [1], [0])])
    assert torch.allclose(model.criterion.normalizer, torch.tensor(90.1))  # frozen in eval
    # An interval without emotion label (-1) trains spotting but not emotion.
    unlabelled = model.loss(model.temporal(torch.randn(1, 64, D)), [gt([[10, 20]], [1], [-1])])
    assert unlabelled["num_positives"] > 0 and unlabelled["emotion_loss"] == 0 and unlabelled["reg_loss"] > 0


# ---------------------------------------------------------------------------- targets

def positives_by_level(targets, lengths):
    """{level: [point positions in frames]} of the positive points."""
    found, start = {}, 0
    for level, n in enumerate(lengths):
        pos = targets["positive"][start:start + n].nonzero().squeeze(1)
        if pos.numel():
            found[level] = (pos * 2 ** level).tolist()
        start += n
    return found


def test_targets_micro_and_macro_hand_case():
    cfg = FEDNConfig(feature_dim=512)
    T = 256
    lengths = [math.ceil(T / 2 ** l) for l in range(6)]
    points = make_points(lengths, cfg.strides, cfg.regression_ranges)
    # micro [20, 28] -> span [19.5, 28.5], centre 24; macro [100, 179] -> [99.5, 179.5], centre 139.5
    t = assign_targets(points, gt([[20, 28], [100, 179]], [0, 1], [2, 1]), cfg.center_sample_radius, 2)
    # Level 0: centre region (22.5, 25.5) holds 23..25, max distances 4.5-5.5 > 4.
    # Level 1 (range 4-8): region (21, 27) -> 22, 24, 26 (max distances 6.5, 4.5, 6.5).
    # Level 2 (range 8-16): region (19.5, 28.5) -> 20, 24, 28; only 20 and 28 reach 8.5.
    # Macro: only level 4 (range 32-64): region (115.5, 163.5) -> 128, 144, 160 (51.5, 44.5, 60.5);
    # level 5's points 128 and 160 are < 64 away from both ends.
    assert positives_by_level(t, lengths) == {1: [22, 24, 26], 2: [20, 28], 4: [128, 144, 160]}
    p = int(sum(lengths[:4])) + 144 // 16  # level 4, point 144
    assert t["type"][p].tolist() == [0.0, 1.0] and t["emotion"][p] == 1
    assert torch.allclose(t["offsets"][p], torch.tensor([(144 - 99.5) / 16, (179.5 - 144) / 16]))
    q = lengths[0] + 24 // 2  # level 1, point 24
    assert t["type"][q].tolist() == [1.0, 0.0] and t["emotion"][q] == 2
    assert torch.allclose(t["offsets"][q], torch.tensor([4.5 / 2, 4.5 / 2]))
    assert (t["emotion"][~t["positive"]] == -1).all() and (t["type"][~t["positive"]] == 0).all()


def test_targets_shortest_interval_wins():
    points = make_points([64], [1], [(0, math.inf)])
    # A micro interval inside a macro one: points in both centre regions go to the micro.
    t = assign_targets(points, gt([[10, 50], [28, 32]], [1, 0], [0, 3]), 1.5, 2)
    assert t["positive"][29:32].all()
    assert (t["emotion"][29:32] == 3).all() and (t["type"][29:32, 0] == 1).all()
    assert torch.allclose(t["offsets"][30], torch.tensor([2.5, 2.5]))
    empty = assign_targets(points, gt([], [], []), 1.5, 2)
    assert not empty["positive"].any()


# ---------------------------------------------------------------------------- NMS and decoding

def test_soft_nms_hand_values():
    spans = torch.tensor([[0.0, 10.0], [1.0, 11.0], [20.0, 30.0]])
    keep, scores = soft_nms(spans, torch.tensor([0.9, 0.8, 0.7]), sigma=0.5)
    assert keep.tolist() == [0, 2, 1]
    decayed = 0.8 * math.exp(-((9 / 11) ** 2) / 0.5)  # IoU([0,10],[1,11]) = 9/11
    assert torch.allclose(scores, torch.tensor([0.9, 0.7, decayed]))
    keep, _ = soft_nms(spans, torch.tensor([0.9, 0.8, 0.7]), sigma=0.5, score_floor=0.3)
    assert keep.tolist() == [0, 2]


def test_hard_nms_hand_case():
    spans = torch.tensor([[0.0, 10.0], [1.0, 11.0], [20.0, 30.0], [5.0, 15.0]])
    # IoU with [0, 10]: 9/11, 0, 5/15
    keep = hard_nms(spans, torch.tensor([0.9, 0.8, 0.7, 0.6]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2, 3]
    keep = hard_nms(spans, torch.tensor([0.9, 0.8, 0.7, 0.6]), iou_threshold=0.3)
    assert keep.tolist() == [0, 2]


def test_suppress_nested_hand_cases():
    # sorted by score: a long macro; a micro inside it; a micro that is another reading of the
    # macro at 60 (IoU 10/12 with it); a macro inside the long one (same type: NMS's business);
    # a micro half outside the long macro
    spans = torch.tensor([[0.0, 50.0], [20.0, 26.0], [60.0, 72.0], [10.0, 30.0], [45.0, 55.0], [60.0, 70.0]])
    types = torch.tensor([1, 0, 1, 1, 0, 0])
    assert suppress_nested(spans, types, cover=0.8).tolist() == [True, False, True, True, True, True]
    # cover 0.5: the micro [45, 55] has exactly half its span inside [0, 50]
    assert suppress_nested(spans, types, cover=0.5).tolist() == [True, False, True, True, False, True]
    # a dropped detection suppresses nothing: [112, 114] lies inside the dropped micro only
    spans = torch.tensor([[0.0, 10.0], [100.0, 140.0], [110.0, 120.0], [112.0, 114.0]])
    assert suppress_nested(spans, torch.tensor([0, 1, 0, 1]), cover=0.8).tolist() == [True, True, False, True]


def test_postprocess_decodes_inclusive_frames():
    cfg = FEDNConfig(feature_dim=512, num_levels=3, regression_ranges=((0, 4), (4, 8), (8, math.inf)))
    lengths = [20, 10, 5]
    type_logits = [torch.full((n, 2), -10.0) for n in lengths]
    emotion_logits = [torch.zeros(n, 4) for n in lengths]
    offsets = [torch.zeros(n, 2) for n in lengths]
    masks = [torch.ones(n, dtype=torch.bool) for n in lengths]
    type_logits[1][3, 1] = 3.0  # level 1, point 6: macro
    offsets[1][3] = torch.tensor([2.25, 1.75])  # span [1.5, 9.5] -> frames 2..9
    emotion_logits[1][3, 2] = 5.0
    type_logits[0][18, 0] = 2.0  # level 0, point 18: micro, span [15.5, 25] clipped to 19.5
    offsets[0][18] = torch.tensor([2.5, 7.0])
    out = postprocess_video(type_logits, emotion_logits, offsets, masks, [1, 2, 4], 20, cfg)
    assert out["onset"][:2].tolist() == [2, 16] and out["offset"][:2].tolist() == [9, 19]
    assert out["type"][:2].tolist() == [1, 0] and out["emotion"][0] == 2
    assert torch.allclose(out["score"][:2], torch.sigmoid(torch.tensor([3.0, 2.0])))


# ---------------------------------------------------------------------------- ablations

@pytest.mark.parametrize("switches", [
    dict(use_segment_attention=False),
    dict(use_window_attention=False),
    dict(use_segment_attention=False, use_window_attention=False, head_attention=False),
    dict(attention="full"),
    dict(downsample="conv", segment_weighting="sigmoid", emotion_loss="focal", nms_method="hard"),
])
def test_ablation_switches_run(switches):
    model = FEDN(small_config(**switches))
    kinds = {type(m).__name__ for m in model.modules()}
    assert ("SegmentAttention" in kinds) == switches.get("use_segment_attention", True)
    assert ("LocalMultiheadAttention" in kinds) == (
        switches.get("use_window_attention", True) and switches.get("attention", "window") == "window")
    assert ("FrameScoring" in kinds) == switches.get("use_window_attention", True)
    x, mask = torch.randn(2, 77, D), prefix_mask([77, 40], 77)
    losses = model.loss(model.temporal(x, mask), [gt([[10, 20]], [0], [1]), gt([[5, 30]], [1], [3])])
    losses["loss"].backward()
    detections = model.eval().predict(x, mask)
    assert len(detections) == 2 and detections[1]["offset"].max() <= 39


# ---------------------------------------------------------------------------- frame encoder

def test_frame_encoder_checkpoint_frozen_and_encode_frames(tmp_path):
    import timm

    source = timm.create_model("resnet18", num_classes=7, pretrained=False)  # e.g. an AffectNet head
    path = tmp_path / "affectnet_resnet18.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    enc = FrameEncoder("resnet18", checkpoint_path=str(path), image_size=32)
    assert torch.equal(enc.model.conv1.weight, source.conv1.weight)
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.model.training

    bgr = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    feats = enc.encode_frames(bgr, batch_size=2)
    assert feats.shape == (3, 512)
    rgb = torch.from_numpy(bgr[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(enc.encode_frames(rgb), feats, atol=1e-5)

    with pytest.raises(UserError):
        FrameEncoder("resnet18", checkpoint_path=str(tmp_path / "missing.pth"))


def test_fedn_with_mca_backbone_on_frames(monkeypatch):
    monkeypatch.setenv("VISIONATTN_FUSED_MOMENTS", "0")  # no extension build inside a test
    model = FEDN(small_config(feature_dim=512), encoder=FrameEncoder("resnet18_mca_e"))
    frames = torch.randn(1, 6, 3, 32, 32)
    out = model(frames=frames)
    assert out["type_logits"][0].shape == (1, 6, 2)
    assert model.forward_features(frames=frames).shape == (1, 6, 512)


# ---------------------------------------------------------------------------- overfit

def interval_iou(a, b) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]) + 1)
    return inter / ((a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter)


def test_tiny_overfit_recovers_both_intervals():
    T, dim = 256, 32
    g = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(1, T, dim, generator=g)
    intervals = [(60, 70, 0, 2), (140, 199, 1, 1)]  # (onset, offset, type, emotion): micro surprise, macro positive
    for onset, offset, _, _ in intervals:
        x[0, onset:offset + 1] += 2 * torch.randn(dim, generator=g)
    truth = [gt([[a, b] for a, b, _, _ in intervals], [t for *_, t, _ in intervals], [e for *_, e in intervals])]

    model = FEDN(FEDNConfig(feature_dim=dim, embed_dim=32, num_heads=4))
    start = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(150):
        loss = model.loss(model.temporal(x), truth)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    model.eval()
    start.eval().criterion.normalizer.copy_(model.criterion.normalizer)  # same scale for both
    with torch.no_grad():
        before = start.loss(start.temporal(x), truth)["loss"]
        after = model.loss(model.temporal(x), truth)["loss"]
    assert after < before / 5

    det = model.predict(x)[0]
    top = [(int(det["onset"][i]), int(det["offset"][i]), int(det["type"][i]), int(det["emotion"][i]))
           for i in range(2)]
    for onset, offset, kind, emotion in intervals:
        match = [d for d in top if interval_iou(d[:2], (onset, offset)) > 0.5]
        assert match and match[0][2:] == (kind, emotion), (top, intervals)
