import subprocess
import sys

import pytest

from visionattn import cli
from visionattn.utils import UserError


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "visionattn.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in cli.SUBCOMMANDS:
        assert name in out.stdout


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
