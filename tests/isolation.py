"""Python in a child process where some packages cannot be imported, as on a machine without them
(imported as ``isolation``; pytest puts tests/ on sys.path).

A blocked package is set to None in ``sys.modules``: ``import`` then raises ModuleNotFoundError
and ``importlib.util.find_spec`` returns None, both exactly as where the package is not
installed (a meta-path finder that raises would also break the libraries that merely probe for
optional packages with find_spec, as torch does for pandas).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable

ROOT = Path(__file__).resolve().parent.parent

_PRELUDE = """
import sys

for _name in BLOCKED:
    sys.modules[_name] = None
"""


def run_blocked(blocked: Iterable[str], code: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    """Run ``code`` (with ``sys.argv[1:] == args``) in a fresh interpreter where importing any
    package of ``blocked`` fails; this checkout's visionattn comes first on the path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    program = f"BLOCKED = {sorted(set(blocked))!r}\n{_PRELUDE}\n{code}"
    return subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)


CLI = "from visionattn.cli import main\nsys.exit(main(sys.argv[1:]))"
"""``code`` for :func:`run_blocked` that runs the ``visionattn`` command with ``args``."""
