"""mmdetection integration: the MCA plugin, configs/mmdet, tools/*_det.py and the converter.

Everything runs on the CPU on a tiny COCO-format data set that the tests write from real
photographs shipped by scikit-image, with hand-drawn boxes, at about 200 px.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mmdet", reason="mmdet is not installed (tools/install_mmdet.sh installs it)")
pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed (tools/install_mmdet.sh)")

import timm  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.registry import HOOKS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmdet.registry import DATASETS, MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402

import visionattn  # noqa: E402,F401
import visionattn.mmdet  # noqa: E402,F401
from visionattn.mmdet import MCAPlugin, ResNetMCA  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """These tests run many small convolutions: one thread is faster than two on 2 cores, and
    far faster (10x measured) when another process keeps the cores busy (OpenMP barriers)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


CONFIGS = ROOT / "configs" / "mmdet"
register_all_modules(init_default_scope=True)


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(f"_tool_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True, scope="module")
def _restore_environ():
    """mmengine and the tools may set process-wide variables (ranks, threads): keep them out of
    the tests that follow (a leaked LOCAL_RANK makes Lightning's DDP launcher wait for ranks)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


train_det = _load_tool("train_det")
test_det = _load_tool("test_det")
convert_tool = _load_tool("convert_timm_to_mmdet")

# ------------------------------------------------------------------------------------------
# A tiny COCO data set from real photographs (scikit-image), boxes drawn by hand (x1, y1, x2, y2)
# in the original pixel coordinates.
CLASSES = ("person", "rocket", "cat", "cup", "spoon")
PHOTOS = {
    "astronaut": [("person", (25, 15, 370, 512)), ("rocket", (352, 0, 470, 272))],
    "chelsea": [("cat", (20, 0, 420, 300))],
    "coffee": [("cup", (172, 15, 418, 305)), ("spoon", (322, 65, 425, 325))],
    "rocket": [("rocket", (300, 125, 338, 410))],
}
MAX_SIDE = 128  # CPU time: R-50 + FPN costs about 1 s per 128 px image and step on 2 cores


def write_tiny_coco(root: Path) -> Path:
    from PIL import Image
    from skimage import data

    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for image_id, (name, objects) in enumerate(PHOTOS.items(), start=1):
        img = Image.fromarray(getattr(data, name)())
        scale = MAX_SIDE / max(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BILINEAR)
        img.save(root / "images" / f"{name}.jpg", quality=95)
        images.append(dict(id=image_id, file_name=f"{name}.jpg", width=img.width, height=img.height))
        for label, box in objects:
            x1, y1, x2, y2 = (v * scale for v in box)
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id, category_id=CLASSES.index(label) + 1,
                bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1), iscrowd=0,
                segmentation=[[x1, y1, x2, y1, x2, y2, x1, y2]],
            ))
    categories = [dict(id=i + 1, name=c) for i, c in enumerate(CLASSES)]
    (root / "annotations.json").write_text(
        json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return root


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    return write_tiny_coco(tmp_path_factory.mktemp("tiny_coco"))


# What a user would write to fine-tune one of configs/mmdet on their own small data set.
TINY_CFG = """
_base_ = {base!r}
data_root = {root!r}
classes = {classes!r}
img_scale = ({max_side}, {max_side})
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={with_mask}),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={with_mask}),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
dataset = dict(data_root=data_root, ann_file='annotations.json', data_prefix=dict(img='images/'),
               metainfo=dict(classes=classes), pipeline=train_pipeline)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(dataset, filter_cfg=dict(filter_empty_gt=True, min_size=1)))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                      dataset=dict(dataset, test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + '/annotations.json', metric={metric!r})
test_evaluator = val_evaluator
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=8, val_interval=1000)
param_scheduler = []
optim_wrapper = dict(optimizer=dict(lr=0.02), clip_grad=dict(max_norm=10.0))
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=4, by_epoch=False),
                     logger=dict(type='LoggerHook', interval=1))
log_processor = dict(by_epoch=False)
custom_hooks = [dict(type='VisionattnTestIterRecorder')]
randomness = dict(seed=0)
model = {model}
"""
# Fewer proposals and sampled RoIs than COCO training uses keep a CPU step short.
_TWO_STAGE_CFG = ("train_cfg=dict(rpn_proposal=dict(nms_pre=300, max_per_img=100), "
                  "rcnn=dict(sampler=dict(num=64))), "
                  "test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(score_thr=0.0))")
MODEL_DELTA = {
    "faster-rcnn": "dict(backbone=dict(init_cfg=None), roi_head=dict(bbox_head=dict(num_classes=5)), "
                   + _TWO_STAGE_CFG + ")",
    "mask-rcnn": "dict(backbone=dict(init_cfg=None), roi_head=dict(bbox_head=dict(num_classes=5), "
                 "mask_head=dict(num_classes=5)), " + _TWO_STAGE_CFG + ")",
    "retinanet": "dict(backbone=dict(init_cfg=None), bbox_head=dict(num_classes=5), "
                 "test_cfg=dict(score_thr=0.0))",
}


def write_tiny_config(tmp_path, config_name, root) -> Path:
    detector = config_name.split("_")[0]
    mask = detector == "mask-rcnn"
    text = TINY_CFG.format(
        base=str(CONFIGS / config_name), root=str(root), classes=CLASSES, max_side=MAX_SIDE,
        with_mask=mask, metric=["bbox", "segm"] if mask else "bbox", model=MODEL_DELTA[detector],
    )
    path = tmp_path / f"tiny_{config_name}"
    path.write_text(text)
    return path


ITERS_SEEN: list = []


@HOOKS.register_module(force=True)
class VisionattnTestIterRecorder(Hook):
    """Records the iteration number each training step starts at."""

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        ITERS_SEEN.append(runner.iter)


# ------------------------------------------------------------------------------------------
ALL_CONFIGS = [f"{det}_r{depth}-mca-{v}_fpn_1x_coco.py"
               for det in ("faster-rcnn", "mask-rcnn", "retinanet") for depth in (50, 101) for v in "es"]


def test_configs_complete_and_local_weights_only():
    assert sorted(p.name for p in CONFIGS.glob("*.py")) == sorted(ALL_CONFIGS)
    for name in ALL_CONFIGS:
        cfg = Config.fromfile(CONFIGS / name)
        backbone = cfg.model.backbone
        variant = name.split("-mca-")[1][0].upper()
        depth = int(name.split("_r")[1].split("-")[0])
        assert backbone.type == "ResNetMCA" and backbone.depth == depth, name
        assert "plugins" not in backbone, name  # MCA comes from the backbone type, at its default slot
        assert backbone.mca == dict(variant=variant, kernel_size={"E": 11, "S": 3}[variant]), name
        model = MODELS.build(dict(backbone, init_cfg=None))
        assert model.plugins[-1]["position"] == "after_conv3" and model.plugins[-1]["stages"] == (True,) * 4
        assert sum(isinstance(m, MCAPlugin) for m in model.modules()) == {50: 16, 101: 33}[depth], name
        assert model.layer1[0].mca.moments == {"E": ["mean", "std"], "S": ["mean", "skew"]}[variant], name
        # nothing is downloaded at run time: a local path from tools/convert_timm_to_mmdet.py
        assert backbone.init_cfg.type == "Pretrained", name
        assert backbone.init_cfg.checkpoint == f"checkpoints/resnet{depth}_mca_{variant.lower()}_mmdet.pth"
        assert "://" not in cfg.dump(), name
        assert cfg.custom_imports.imports == ["visionattn.mmdet"]
        assert cfg.train_cfg.max_epochs == 12  # the 1x schedule of the paper


def test_import_visionattn_does_not_import_mmdet_glue():
    import subprocess

    code = ("import sys, visionattn; "
            "assert 'visionattn.mmdet' not in sys.modules and 'mmdet' not in sys.modules, "
            "sorted(m for m in sys.modules if 'mmdet' in m)")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------
# ResNetMCA: mmdet's ResNet with the plugin in its Bottlenecks.

def build_resnet(variant="S", position="after_conv3", kernel_size=None, **kwargs):
    mca = dict(variant=variant)
    if kernel_size is not None:
        mca["kernel_size"] = kernel_size
    return MODELS.build(dict(type="ResNetMCA", depth=50, out_indices=(0, 1, 2, 3), mca=mca, mca_position=position,
                             **kwargs))


def test_plain_resnet_takes_the_plugin_the_mmdet_way():
    """mmdet's own ResNet, untouched, builds MCAPlugin from a ``plugins`` list (no validation)."""
    model = MODELS.build(dict(type="ResNet", depth=50, plugins=[
        dict(cfg=dict(type="MomentChannelAttention", variant="E"), stages=(False, True, True, True),
             position="after_conv3")]))
    assert type(model).__name__ == "ResNet" and not isinstance(model, ResNetMCA)
    assert not hasattr(model.layer1[0], "mca") and isinstance(model.layer2[0].mca, MCAPlugin)
    assert model.layer2[0].mca.channels == 512


@pytest.mark.parametrize("position,channels", [("after_conv3", 256), ("after_conv2", 64)])
@pytest.mark.parametrize("variant,kernel_size,moments,k", [
    ("E", None, 2, 11), ("S", None, 2, 3), ("T", 5, 3, 5), (("mean", "kurt"), "auto", 2, 5),
])
def test_plugin_positions_and_variants(position, channels, variant, kernel_size, moments, k):
    model = build_resnet(variant, position, kernel_size)
    model.eval()  # mmdet's ResNet.train() returns None
    block = model.layer1[0]
    assert isinstance(block.mca, MCAPlugin)
    names = {"after_conv2": block.after_conv2_plugin_names, "after_conv3": block.after_conv3_plugin_names}
    assert names[position] == ["mca"]
    assert block.mca.channels == channels
    assert block.mca.cmc.in_channels == moments
    if kernel_size != "auto":
        assert block.mca.kernel_size == k
    n_blocks = sum(isinstance(m, MCAPlugin) for m in model.modules())
    assert n_blocks == 16  # every Bottleneck of ResNet-50
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4), (1, 2048, 2, 2)]
    assert all(torch.isfinite(o).all() for o in outs)


def test_plugin_registered_under_both_names():
    assert MODELS.get("MomentChannelAttention") is MCAPlugin
    assert MODELS.get("MCA") is MCAPlugin
    assert MODELS.get("ResNetMCA") is ResNetMCA
    assert MCAPlugin._abbr_ == "mca"


def _assert_mca_default_init(model):
    for name, m in model.named_modules():
        if isinstance(m, MCAPlugin):
            bound = 1 / math.sqrt(m.cmc.in_channels * m.cmc.kernel_size[0])  # PyTorch's Conv1d init
            w, b = m.cmc.weight.detach(), m.cmc.bias.detach()
            assert w.abs().max() <= bound and b.abs().max() <= bound, name
            assert w.std() > 0.1 * bound, f"{name}: weights collapsed to a constant"


@pytest.mark.parametrize("init_cfg", [
    None,  # mmdet's own: Kaiming for Conv2d, constant BN, zero-init residual norm3
    [dict(type="Kaiming", layer=["Conv2d", "Conv1d"]), dict(type="Constant", val=0.0, layer="Conv1d")],
], ids=["mmdet-default", "conv1d-overwritten"])
def test_plugin_init_survives_backbone_init(init_cfg):
    model = build_resnet("S", init_cfg=init_cfg)
    model.init_weights()
    _assert_mca_default_init(model)
    # still a working gate: different channels get different weights
    mca = model.layer2[0].mca.eval()
    x = torch.randn(2, 512, 8, 8) * torch.linspace(0.1, 3, 512).view(1, -1, 1, 1)
    with torch.no_grad():
        gate = (mca(x) / x).mean(dim=(2, 3))
    assert gate.min() > 0 and gate.max() < 1 and gate.std() > 1e-3


def test_bad_variant_names_key_and_allowed_values():
    with pytest.raises(ValueError, match=r"variant='Q' is not allowed; allowed values: 'E', 'S', 'T'") as e:
        build_resnet("Q")
    assert "moment names" in str(e.value)
    with pytest.raises(visionattn.utils.UserError, match=r"kernel_size=4 is not allowed"):
        build_resnet("S", kernel_size=4)


def test_bad_position_names_key_and_allowed_values():
    msg = r"plugins\[0\]\.position='after_conv4' is not allowed; allowed values: 'after_conv1', 'after_conv2', 'after_conv3'"
    with pytest.raises(ValueError, match=msg):
        build_resnet("S", position="after_conv4")
    # the same through a detector config
    cfg = Config.fromfile(CONFIGS / "faster-rcnn_r50-mca-s_fpn_1x_coco.py")
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.mca_position = "before_conv1"
    with pytest.raises(ValueError, match=r"position='before_conv1' is not allowed"):
        MODELS.build(cfg.model)


def test_plugins_need_bottleneck_and_distinct_names():
    with pytest.raises(ValueError, match=r"BasicBlock.*depth 50, 101 or 152"):
        MODELS.build(dict(type="ResNetMCA", depth=18, mca=dict()))
    with pytest.raises(ValueError, match=r"distinct cfg 'postfix'"):
        MODELS.build(dict(type="ResNetMCA", depth=50, mca=dict(), plugins=[
            dict(cfg=dict(type="MCA"), position="after_conv2")]))
    model = MODELS.build(dict(type="ResNetMCA", depth=50, mca=dict(postfix="_out"), plugins=[
        dict(cfg=dict(type="MCA", variant="E"), position="after_conv2")]))
    assert isinstance(model.layer3[2].mca, MCAPlugin) and isinstance(model.layer3[2].mca_out, MCAPlugin)


# ------------------------------------------------------------------------------------------
# Converter: timm MCA ResNet -> mmdet ResNet + plugin gives the same features.

def _randomize_bn_and_mca(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=g) * 0.5 + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            elif isinstance(m, torch.nn.Conv1d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)


@pytest.mark.parametrize("timm_name,mmdet_args", [
    ("resnet50_mca_s", dict(plugin=dict(variant="S", kernel_size=3))),
    ("resnet50d_mca_e", dict(plugin=dict(variant="E", kernel_size=11), deep_stem=True, avg_down=True)),
])
def test_converter_same_features(tmp_path, timm_name, mmdet_args):
    timm_model = timm.create_model(timm_name)
    _randomize_bn_and_mca(timm_model)
    src = tmp_path / "lightning.ckpt"  # Lightning-style wrapping: state_dict + 'model.' prefix
    torch.save({"epoch": 3, "state_dict": {f"model.{k}": v for k, v in timm_model.state_dict().items()}}, src)
    dst = tmp_path / "out" / "backbone.pth"
    assert convert_tool.main([str(src), str(dst)]) == 0
    ckpt = torch.load(dst, map_location="cpu", weights_only=True)
    assert set(ckpt) == {"state_dict", "meta"}
    assert not any(k.startswith("fc.") for k in ckpt["state_dict"])
    assert "layer1.0.mca.cmc.weight" in ckpt["state_dict"]
    assert ckpt["meta"]["mmdet_backbone"]["depth"] == 50

    assert ckpt["meta"]["mmdet_backbone"]["type"] == "ResNetMCA"
    mm = MODELS.build(dict(
        type="ResNetMCA", depth=50, out_indices=(0, 1, 2, 3), mca=mmdet_args.pop("plugin"), **mmdet_args,
        init_cfg=dict(type="Pretrained", checkpoint=str(dst))))
    mm.init_weights()  # loads the converted weights (after the plugin's own init)
    mm_sd = mm.state_dict()
    assert set(ckpt["state_dict"]) == set(mm_sd), set(ckpt["state_dict"]) ^ set(mm_sd)
    feats = timm.create_model(timm_name, features_only=True, out_indices=(1, 2, 3, 4))
    feats.load_state_dict({k: v for k, v in timm_model.state_dict().items() if not k.startswith("fc.")})
    mm.eval()
    feats.eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        ours, theirs = mm(x), feats(x)
    assert len(ours) == len(theirs) == 4
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-5 * max(1.0, b.abs().max().item()), rtol=1e-4)


def test_converter_errors_name_file_and_key(tmp_path, capsys):
    missing = tmp_path / "missing.pth"
    assert convert_tool.main([str(missing), str(tmp_path / "o.pth")]) == 2
    assert str(missing) in capsys.readouterr().err
    sd = timm.create_model("resnet50").state_dict()
    sd["layer2.1.se.fc1.weight"] = torch.zeros(8, 512, 1, 1)  # an SE block: not MCA
    bad = tmp_path / "se.pth"
    torch.save(sd, bad)
    assert convert_tool.main([str(bad), str(tmp_path / "o.pth")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "'layer2.1.se.fc1.weight'" in err
    small = tmp_path / "r18.pth"
    torch.save(timm.create_model("resnet18_mca_s").state_dict(), small)
    assert convert_tool.main([str(small), str(tmp_path / "o.pth")]) == 2
    assert "BasicBlock" in capsys.readouterr().err
    assert not (tmp_path / "o.pth").exists()


# ------------------------------------------------------------------------------------------
# Training, resuming and evaluation on the CPU through tools/train_det.py and tools/test_det.py.

def _fixed_batch_loss(model, batch) -> float:
    torch.manual_seed(0)  # the RoI sampler draws random proposals
    model.train()
    with torch.no_grad():
        data = model.data_preprocessor(batch, True)
        total, _ = model.parse_losses(model(**data, mode="loss"))
    return total.item()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, coco_root):
    """Faster R-CNN R-50 + MCA-S trained 8 iterations via tools/train_det.py's config handling."""
    tmp = tmp_path_factory.mktemp("faster_rcnn")
    config = write_tiny_config(tmp, "faster-rcnn_r50-mca-s_fpn_1x_coco.py", coco_root)
    work_dir = tmp / "work"
    args = train_det.parse_args([str(config), "--work-dir", str(work_dir)])
    runner = Runner.from_cfg(train_det.build_config(args))
    model = runner.model
    batch = next(iter(runner.build_dataloader(runner.cfg.train_dataloader)))
    model.init_weights()  # the runner's own call is then a no-op, so "before" is the true start
    before = _fixed_batch_loss(model, batch)
    ITERS_SEEN.clear()
    runner.train()
    after = _fixed_batch_loss(model, batch)
    return dict(config=config, work_dir=work_dir, before=before, after=after, iters=list(ITERS_SEEN))


def test_train_loss_goes_down(trained):
    assert trained["iters"] == list(range(8))
    assert math.isfinite(trained["before"]) and math.isfinite(trained["after"])
    assert trained["after"] < 0.8 * trained["before"], (trained["before"], trained["after"])
    for it in (4, 8):
        ckpt = torch.load(trained["work_dir"] / f"iter_{it}.pth", map_location="cpu", weights_only=False)
        assert ckpt["meta"]["iter"] == it
        assert "backbone.layer1.0.mca.cmc.weight" in ckpt["state_dict"]
    assert (trained["work_dir"] / "last_checkpoint").read_text().strip().endswith("iter_8.pth")


def test_resume_continues_iteration_count(trained):
    ITERS_SEEN.clear()
    runner = train_det.main([str(trained["config"]), "--work-dir", str(trained["work_dir"]), "--resume",
                             "--cfg-options", "train_cfg.max_iters=10"])
    assert ITERS_SEEN == [8, 9]
    assert runner.iter == 10
    assert (trained["work_dir"] / "iter_10.pth").is_file()
    # and from an explicit checkpoint path
    ITERS_SEEN.clear()
    train_det.main([str(trained["config"]), "--work-dir", str(trained["work_dir"] / "from_path"),
                    "--resume", str(trained["work_dir"] / "iter_4.pth"), "--cfg-options", "train_cfg.max_iters=5"])
    assert ITERS_SEEN == [4]


def test_evaluate_coco_metric(trained, tmp_path):
    out = tmp_path / "preds.pkl"
    metrics = test_det.main([str(trained["config"]), str(trained["work_dir"] / "iter_8.pth"),
                             "--work-dir", str(tmp_path / "eval"), "--out", str(out),
                             "--show-dir", "shown"])
    for key in ("coco/bbox_mAP", "coco/bbox_mAP_50", "coco/bbox_mAP_75"):
        assert key in metrics and -1.0 <= metrics[key] <= 1.0, metrics
    preds = pickle.loads(out.read_bytes())
    assert len(preds) == len(PHOTOS)
    assert all(len(p["pred_instances"]["bboxes"]) > 0 for p in preds)  # NMS (mmcv.ops) ran
    assert len(list((tmp_path / "eval").rglob("shown/*.jpg"))) == len(PHOTOS)


@pytest.mark.parametrize("config_name,expected", [
    ("mask-rcnn_r50-mca-e_fpn_1x_coco.py", {"loss_rpn_cls", "loss_cls", "loss_bbox", "loss_mask"}),
    ("retinanet_r50-mca-s_fpn_1x_coco.py", {"loss_cls", "loss_bbox"}),
])
def test_other_detectors_build_and_compute_loss(tmp_path, coco_root, config_name, expected):
    cfg = Config.fromfile(write_tiny_config(tmp_path, config_name, coco_root))
    # mmdet zero-initialises each block's last BN, so at init MCA sees zeros and gets no gradient.
    cfg.model.backbone.zero_init_residual = False
    model = MODELS.build(cfg.model)
    model.init_weights()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([dataset[0], dataset[2]])
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode="loss")
    assert expected <= set(losses)
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    grad = model.backbone.layer4[0].mca.cmc.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
