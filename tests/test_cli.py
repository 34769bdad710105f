"""The `visionattn` command: --version, `python -m visionattn`, help with defaults and an example
per subcommand, one-line user errors, and only the chosen subcommand's module imported (the
table commands run where torch cannot be imported)."""
import csv
import subprocess
import sys

import pytest

from visionattn import __version__, cli
from visionattn.utils import UserError

from isolation import CLI, ROOT, run_blocked


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "visionattn", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in cli.SUBCOMMANDS:
        assert name in out.stdout
    assert "Example:" in out.stdout


def test_version():
    out = subprocess.run([sys.executable, "-m", "visionattn", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"visionattn {__version__}"
    assert __version__ in (ROOT / "setup.cfg").read_text()  # one version, the package's


def test_user_error_is_one_line_without_traceback(monkeypatch, capsys):
    import visionattn.benchmarks.mca_speed as bench

    def boom(args):
        raise UserError("video 'x.mp4': not found")

    monkeypatch.setattr(bench, "run", boom)
    assert cli.main(["benchmark"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "visionattn benchmark: error: video 'x.mp4': not found"


def test_unknown_subcommand_exits_2():
    with pytest.raises(SystemExit) as exc:
        cli.main(["nope"])
    assert exc.value.code == 2


@pytest.mark.parametrize("name", [n for n, s in cli.SUBCOMMANDS.items() if not s.passthrough])
def test_help_shows_defaults_and_an_example_that_parses(name):
    parser = cli.subcommand_parser(name)
    text = parser.format_help()
    example = cli.SUBCOMMANDS[name].example
    assert f"Example:\n  {example}" in text
    # every option with a real default says it in its help line
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.option_strings and action.default not in (None, False, "==SUPPRESS=="):
            assert "default" in formatter._get_help_string(action).lower(), (name, action.option_strings)
    import shlex

    words = shlex.split(example)
    assert words[:2] == ["visionattn", name]
    parser.parse_args(words[2:])  # the example's flags exist (SystemExit otherwise)


def test_parser_imports_only_the_chosen_subcommand():
    code = """
from visionattn import cli
cli.build_parser()
assert not [m for m in sys.modules if m in {s.module for s in cli.SUBCOMMANDS.values()}], "imported a subcommand"
cli.build_parser("evaluate")
loaded = {s.module for s in cli.SUBCOMMANDS.values()} & set(sys.modules)
assert loaded == {"visionattn.evaluation.command"}, loaded
print("ok")
"""
    out = run_blocked([], code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_table_commands_run_without_torch(tmp_path):
    gt, pred = tmp_path / "gt.csv", tmp_path / "pred.csv"
    with open(gt, "w", newline="") as f:
        csv.writer(f).writerows([("subject", "video", "onset", "offset", "type", "emotion"),
                                 ("s15", "0101", 10, 40, "macro", "positive"),
                                 ("s15", "0101", 100, 110, "micro", "negative")])
    with open(pred, "w", newline="") as f:  # one hit (IoU 29/31), one miss
        csv.writer(f).writerows([("subject", "video", "onset", "offset", "type", "emotion"),
                                 ("s15", "0101", 12, 40, "macro", "positive"),
                                 ("s15", "0101", 300, 310, "micro", "negative")])
    blocked = ["torch", "timm", "torchvision", "lightning", "cv2"]
    out = run_blocked(blocked, CLI, "evaluate", "--gt", str(gt), "--pred", str(pred), "--json")
    assert out.returncode == 0, out.stderr
    import json

    spotting = json.loads(out.stdout)["spotting"]
    assert spotting["macro"]["f1"] == 1.0 and spotting["micro"]["f1"] == 0.0
    # the blocker works: a torch-backed command fails under it
    assert run_blocked(blocked, "import torch").returncode != 0
    for argv in (["evaluate", "--help"], ["annotations", "--help"], ["--help"], ["--version"]):
        assert run_blocked(blocked, CLI, *argv).returncode == 0, argv


def test_python_dash_m_runs_the_command(tmp_path):
    out = subprocess.run([sys.executable, "-m", "visionattn", "evaluate", "--gt", str(tmp_path / "none.csv"),
                          "--pred", str(tmp_path / "none.csv")], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.startswith("visionattn evaluate: error:") and "none.csv" in out.stderr
    assert "Traceback" not in out.stderr
