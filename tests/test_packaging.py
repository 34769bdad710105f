"""What each install gives: the core requirements are torch, torchvision, timm (and numpy, which
the package imports); the timm models work where the expression stack cannot be imported;
every third-party package the code imports is declared in an extra; constraints.txt pins each;
`make demo` and `make detect-demo` never wait for the mmcv build."""
import ast
import configparser
import re
import subprocess

from isolation import ROOT, run_blocked

CORE = {"torch", "torchvision", "timm", "numpy"}
# top-level import name -> distribution, where they differ
DISTRIBUTION = {"cv2": "opencv-python", "yaml": "PyYAML", "skimage": "scikit-image", "sklearn": "scikit-learn",
                "dlib": "dlib-bin", "mmengine": "onedl-mmengine", "ai_edge_litert": "ai-edge-litert"}
# imported, but provided by a declared distribution: mmcv is built by tools/install_mmdet.sh for
# mmdet, safetensors comes with timm, Pillow with torchvision
PROVIDED = {"mmcv": "mmdet", "safetensors": "timm", "PIL": "torchvision"}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")

    def names(text):
        return [_name(line) for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]

    core = names(cfg["options"]["install_requires"])
    extras = {key: names(value) for key, value in cfg["options.extras_require"].items()}
    return core, extras


def test_core_requirements_are_torch_torchvision_timm_numpy():
    core, extras = _requirements()
    assert set(core) == CORE
    assert set(extras) == {"fedn", "mmdet", "dev"}
    for name in ("lightning", "opencv-python", "dlib-bin", "face-recognition-models", "pandas", "PyYAML", "av"):
        assert name in extras["fedn"], name
    for name in ("pytest", "h5py", "scikit-video", "selenium", "jsonschema"):
        assert name in extras["dev"], name


def test_constraints_pin_every_requirement():
    core, extras = _requirements()
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version and re.fullmatch(r"[0-9][0-9A-Za-z.+]*", version), line
            pins[_canonical(name)] = version
    for name in core + [n for names in extras.values() for n in names]:
        assert _canonical(name) in pins, f"{name} has no exact pin in constraints.txt"


def test_every_imported_package_is_declared():
    core, extras = _requirements()
    declared = {_canonical(n) for n in core + [n for names in extras.values() for n in names]}
    import sys

    stdlib = set(sys.stdlib_module_names)
    missing = {}
    for path in (ROOT / "visionattn").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops = [a.name.partition(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.partition(".")[0]]
            else:
                continue
            for top in tops:
                if top in stdlib or top == "visionattn":
                    continue
                dist = _canonical(DISTRIBUTION.get(top, PROVIDED.get(top, top)))
                if dist not in declared:
                    missing.setdefault(top, str(path.relative_to(ROOT)))
    assert not missing, f"imported but not declared in setup.cfg: {missing}"


def test_timm_models_without_the_expression_stack():
    code = """
import timm, visionattn
from timm.models._registry import _model_entrypoints
import torch

names = sorted(n for n, fn in _model_entrypoints.items() if fn.__module__.startswith("visionattn."))
for name in names:
    timm.create_model(name)
model = timm.create_model("mini_xception_fer2013", pretrained=True).eval()  # the shipped weights
with torch.no_grad():
    assert model(torch.zeros(1, 1, 64, 64)).shape == (1, 7)
assert timm.create_model("resnet50_mca_s").num_classes == 1000
print(len(names), " ".join(names))
"""
    blocked = ["lightning", "cv2", "dlib", "pandas", "matplotlib"]
    out = run_blocked(blocked, code)
    assert out.returncode == 0, out.stderr
    count, names = out.stdout.split(maxsplit=1)
    assert int(count) >= 18 and "resnet50_mca_s" in names and "mini_xception_fer2013" in names
    assert run_blocked(blocked, "import cv2").returncode != 0  # the blocker works


def test_demo_targets_never_build_mmcv(tmp_path):
    def dry_run(*targets):
        out = subprocess.run(["make", "-n", "-C", str(ROOT), f"VENV={tmp_path / 'venv'}", *targets],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout

    demo = dry_run("demo", "detect-demo")
    assert "-c constraints.txt" in demo and "visionattn demo" in demo and "visionattn detect" in demo
    assert "install_mmdet" not in demo and "install_browser" not in demo
    everything = dry_run("test")
    assert "tools/install_mmdet.sh" in everything and "tools/install_browser.sh" in everything
    assert "-m pytest" in everything


def test_import_registers_the_models_in_either_order_and_loads_no_torch():
    check = "\nassert timm.is_model('resnet50_mca_s') and timm.is_model('mini_xception_fer2013')\nprint('ok')"
    for code in ("import visionattn\nimport timm", "import timm\nimport visionattn", "import visionattn, timm.models"):
        out = run_blocked([], code + check)
        assert out.returncode == 0 and out.stdout.strip() == "ok", (code, out.stderr)
    out = run_blocked([], "import visionattn\nassert 'torch' not in sys.modules and 'timm' not in sys.modules\n"
                          "assert visionattn.layers.MomentChannelAttention\nprint('ok')")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_package_data_ships_the_weights_schema_kernel_and_clip_list():
    """What a non-editable install carries besides modules: each file detect, the timm models and
    benchmark-real read at run time is matched by a package_data pattern, as setuptools reads them."""
    from setuptools.config.setupcfg import read_configuration

    patterns = read_configuration(str(ROOT / "setup.cfg"))["options"]["package_data"]["visionattn"]
    package = ROOT / "visionattn"
    shipped = {p.relative_to(package).as_posix() for pattern in patterns for p in package.glob(pattern)}
    for needed in ("weights/fedn_synthetic.pt", "weights/mini_xception_fer2013.safetensors",
                   "weights/mini_xception_fer2013.LICENSE.txt", "inference/detect_result.schema.json",
                   "csrc/channel_moments.cpp", "benchmarks/real_clip_data/clips.csv",
                   "benchmarks/real_clip_data/annotations.csv"):
        assert needed in shipped, (needed, patterns)
