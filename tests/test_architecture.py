"""The package's layering, read from the source: every import, including those inside functions
and under ``TYPE_CHECKING``, counts."""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Sequence, Set

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "visionattn"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: Set[str]) -> Set[str]:
    """The visionattn modules ``path`` imports (``from x import name`` counts x.name when that is a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [origin] + [f"{origin}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            if target in modules and target != name:
                found.add(target)
    return found


def import_graph() -> Dict[str, Set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(f) for f in files}
    return {module_name(f): imports_of(f, modules) for f in files}


def find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One cycle as a path ``[a, b, ..., a]``, or ``[]``. A package importing its own submodule
    (``__init__`` re-exports) is not a cycle by itself, so edges into a package's own
    ``__init__`` from its submodules are ignored."""
    def edges(node: str):
        return [t for t in graph[node] if not node.startswith(t + ".")]

    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        stack.append(node)
        for nxt in edges(node):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a"}}) == []


def test_no_import_cycle_between_modules():
    cycle = find_cycle(import_graph())
    assert not cycle, " -> ".join(cycle)


def test_no_import_cycle_between_subpackages():
    graph: Dict[str, Set[str]] = {}
    for module, targets in import_graph().items():
        src = subpackage(module)
        graph.setdefault(src, set()).update(subpackage(t) for t in targets if subpackage(t) not in ("", src))
    cycle = find_cycle(graph)
    assert not cycle, " -> ".join(cycle)


def upward_imports(graph: Dict[str, Set[str]], low: Sequence[str], high: Sequence[str]) -> List[str]:
    """``"a imports [b, ...]"`` for every module of the subpackages ``low`` that imports one of ``high``."""
    found = []
    for module, targets in sorted(graph.items()):
        if subpackage(module) in low:
            bad = sorted(t for t in targets if subpackage(t) in high)
            if bad:
                found.append(f"{module} imports {bad}")
    return found


BELOW_TRAINING = ("inference", "spotting", "features", "faces", "data", "models", "layers", "evaluation")


def test_finds_a_planted_upward_import():
    graph = {"visionattn.spotting.flow": {"visionattn.features.motion", "visionattn.training.module"},
             "visionattn.training.module": {"visionattn.spotting.flow"}}
    assert upward_imports(graph, ("spotting",), ("inference", "training")) == [
        "visionattn.spotting.flow imports ['visionattn.training.module']"]
    assert upward_imports(graph, ("training",), ("inference",)) == []


def test_detection_does_not_depend_on_training():
    assert upward_imports(import_graph(), BELOW_TRAINING, ("training",)) == []


def test_spotting_methods_sit_below_detection():
    """Spotting methods turn per-frame evidence into intervals; ``inference`` (the detect tool)
    wires them to a video, so the methods never import it."""
    assert upward_imports(import_graph(), ("spotting",), ("inference", "training")) == []


def test_models_sit_below_features():
    """Models are what features feed (FEDN) or what makes them (the networks): features import
    models, never the other way."""
    assert upward_imports(import_graph(), ("models", "layers"), ("features", "faces")) == []


# ------------------------------------------------------------------------------------------
# One definition of the motion lag: the frames between a motion row's two faces.

LAG_HOME = "visionattn.features.motion"


def _mentions(node: ast.AST, word: str) -> bool:
    """A bare name or attribute whose name contains ``word`` (``fps``, ``self.fps``, ``s.interval_s``)."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return word in name.lower()


def lag_definitions(source: str, module: str) -> List[str]:
    """Where ``source`` defines a lag: a function with a name part ``lag`` (``motion_lag``, not
    ``refuse_unused_flags``) that does not just hand over to ``motion_lag``, or a product of an
    ``*interval*`` and an ``*fps*`` quantity (the lag's formula, ``round(interval_s * fps)``)
    written outside such a function."""
    found = []

    def delegates(function: ast.AST) -> bool:
        return any(isinstance(n, ast.Call) and _mentions(n.func, "motion_lag") for n in ast.walk(function))

    def visit(node: ast.AST, in_lag_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_lag_function
            if (isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and "lag" in child.name.lower().split("_")
                    and not delegates(child)):
                found.append(f"{module}.{child.name} (line {child.lineno})")
                inside = True
            elif (isinstance(child, ast.BinOp) and isinstance(child.op, ast.Mult) and not in_lag_function
                  and any(_mentions(a, "interval") and _mentions(b, "fps")
                          for a, b in ((child.left, child.right), (child.right, child.left)))):
                found.append(f"{module}: interval * fps at line {child.lineno}")
            visit(child, inside)

    visit(ast.parse(source), False)
    return found


def test_finds_a_planted_second_lag_formula():
    home = "def motion_lag(interval_s, fps):\n    return max(1, int(round(interval_s * fps)))\n"
    assert lag_definitions(home, LAG_HOME) == [f"{LAG_HOME}.motion_lag (line 1)"]
    planted = "def spot(s, fps):\n    lag = max(1, round(s.interval_s * fps))\n    return lag\n"
    assert lag_definitions(planted, "x") == ["x: interval * fps at line 2"]
    assert lag_definitions("def refuse_unused_flags(flags):\n    return flags\n", "x") == []
    assert lag_definitions("def frame_lag(a, b):\n    return a // b\n", "x") == ["x.frame_lag (line 1)"]
    # a property that hands over to the one definition is a use, not a second definition
    assert lag_definitions("class C:\n    def lag(self):\n        return motion_lag(self.i, self.fps)\n", "x") == []
    # a different quantity built from the same two (the flow spotter's flank offsets) is not the lag
    assert lag_definitions("h = round((d + s.interval_s) / 2 * fps)\n", "x") == []


def test_one_definition_of_the_motion_lag():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += lag_definitions(path.read_text(encoding="utf-8"), module_name(path))
    home = [f for f in found if f.startswith(f"{LAG_HOME}.motion_lag ")]
    assert len(home) == 1, f"no {LAG_HOME}.motion_lag: {found}"
    assert [f for f in found if f not in home] == []


# ------------------------------------------------------------------------------------------
# Host-library glue registers; it never changes the host's classes at import.

HOSTS = ("mmdet", "mmcv", "mmengine", "timm", "torch", "lightning", "pytorch_lightning")


def host_patches(source: str, module: str) -> List[str]:
    """Assignments in ``source`` to an attribute of an object imported from a host library
    (``ResNet.make_stage_plugins = f``, ``setattr(ResNet, ...)``, ``del mmdet.x``, also
    ``import mmdet.models as m; m.ResNet.forward = f``)."""
    tree = ast.parse(source)
    hosted: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            hosted.update((a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] in HOSTS)
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] in HOSTS:
            hosted.update(a.asname or a.name for a in node.names)

    def root(node: ast.AST) -> str:
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        return node.id if isinstance(node, ast.Name) else ""

    found = []
    for node in ast.walk(tree):
        targets: List[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("setattr", "delattr") and node.args and root(node.args[0]) in hosted):
            found.append((node.lineno, f"{module}: {node.func.id}({root(node.args[0])}, ...) at line {node.lineno}"))
        for target in targets:
            for t in ast.walk(target):
                if isinstance(t, (ast.Attribute, ast.Subscript)) and root(t) in hosted:
                    found.append((node.lineno, f"{module}: {ast.unparse(t)} assigned at line {node.lineno}"))
                    break
    return [text for _, text in sorted(found)]


def test_finds_a_planted_host_patch():
    planted = ("from mmdet.models.backbones.resnet import ResNet\n"
               "import mmdet.models as mm\n"
               "def _wrap():\n"
               "    original = ResNet.make_stage_plugins\n"
               "    ResNet.make_stage_plugins = lambda self, p, i: original(self, p, i)\n"
               "mm.ResNet.forward = None\n"
               "setattr(ResNet, 'x', 1)\n")
    assert host_patches(planted, "x") == [
        "x: ResNet.make_stage_plugins assigned at line 5", "x: mm.ResNet.forward assigned at line 6",
        "x: setattr(ResNet, ...) at line 7"]
    registering = ("from mmdet.models.backbones.resnet import ResNet\nfrom mmdet.registry import MODELS\n"
                   "@MODELS.register_module()\nclass ResNetMCA(ResNet):\n    _abbr_ = 'r'\n"
                   "    def make_stage_plugins(self, plugins, i):\n        self.seen = plugins\n"
                   "        return super().make_stage_plugins(plugins, i)\n")
    assert host_patches(registering, "x") == []


def test_no_host_library_patched_at_import():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += host_patches(path.read_text(encoding="utf-8"), module_name(path))
    assert found == []


def test_importing_the_mmdet_glue_changes_no_mmdet_class():
    """At run time too: every class mmdet's registry and backbones hold keeps every attribute."""
    pytest.importorskip("mmdet", reason="mmdet is not installed (tools/install_mmdet.sh installs it)")
    pytest.importorskip("mmcv.ops", reason="mmcv with compiled ops is not installed")
    code = textwrap.dedent("""
        import inspect, sys
        import mmdet.models, mmdet.models.backbones.resnet as resnet
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        classes = {c for c in MODELS.module_dict.values() if inspect.isclass(c)}
        classes |= {c for _, c in inspect.getmembers(resnet, inspect.isclass)}
        before = {(c, k): id(v) for c in classes for k, v in vars(c).items()}
        import visionattn.mmdet
        after = {(c, k): id(v) for c in classes for k, v in vars(c).items()}
        changed = sorted(f"{c.__module__}.{c.__qualname__}.{k}" for c, k in set(before) ^ set(after)
                         | {key for key in before if after.get(key) != before[key]})
        assert not changed, changed
        assert resnet.ResNet.make_stage_plugins.__module__ == "mmdet.models.backbones.resnet"
        print(len(classes), "classes unchanged")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "classes unchanged" in done.stdout


# ------------------------------------------------------------------------------------------
# One video -> face -> rows stream: only the shared stream puts timed frames on the model grid.

STREAM_HOME = "visionattn.data.stream"
RESAMPLE_HOME = "visionattn.data.frames"  # where ``resample`` is defined


def resample_calls(source: str, module: str) -> List[str]:
    """Where ``source`` puts timed frames on a grid itself: a call ``resample(...)`` or
    ``frames.resample(...)`` (a method of another object, ``resampler.resample(packet)``, is not
    the frames' resampling), or an import of ``resample`` from ``visionattn.data.frames``."""
    imported_modules: Set[str] = set()  # local names bound to visionattn.data.frames
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "frames":
            if any(a.name == "resample" for a in node.names):
                found.append((node.lineno, f"{module}: imports resample at line {node.lineno}"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "data":
            imported_modules.update(a.asname or a.name for a in node.names if a.name == "frames")
        elif isinstance(node, ast.Import):
            imported_modules.update(a.asname or a.name for a in node.names if a.name.endswith(".frames"))
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "resample" or (
                isinstance(func, ast.Attribute) and func.attr == "resample"
                and ast.unparse(func.value) in imported_modules | {RESAMPLE_HOME}):
            found.append((node.lineno, f"{module}: resample( at line {node.lineno}"))
    return [text for _, text in sorted(found)]


def test_finds_a_planted_second_resampling():
    planted = ("from ..data.frames import iter_timed_frames, resample\n"
               "def rows(path, fps):\n"
               "    for step, index, seconds, image in resample(iter_timed_frames(path), fps):\n"
               "        yield image\n")
    assert resample_calls(planted, "x") == ["x: imports resample at line 1", "x: resample( at line 3"]
    qualified = "from visionattn.data import frames as fr\nsteps = fr.resample(fr.iter_timed_frames(p), 30)\n"
    assert resample_calls(qualified, "x") == ["x: resample( at line 2"]
    # another library's resampler (PyAV's audio/video frame resampler) is not the frames' resampling
    assert resample_calls("import av\nr = av.AudioResampler()\nout = r.resample(frame)\n", "x") == []


def test_one_stream_resamples_timed_frames():
    """Training rows (data/cache.py) and detection (inference/detector.py) read their frames through
    :mod:`visionattn.data.stream`, so neither can put a video on the model grid its own way."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        if module not in (STREAM_HOME, RESAMPLE_HOME):
            found += resample_calls(path.read_text(encoding="utf-8"), module)
    assert found == []
