"""The README's commands exist: every `visionattn` subcommand and flag in its code blocks parses,
every `make` target is in the Makefile, every script and repository file it names is there, and
every relative link of the README and docs/ resolves. The README stays a short page for users."""
import configparser
import re
import shlex
from pathlib import Path

import pytest

from visionattn import cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# files of this repository (data/ holds the user's licensed datasets, outputs/ what commands write)
REPO_PATH = re.compile(r"^(configs|tools|docs|visionattn|tests)/[\w./()^-]+$")


def code_blocks(text):
    """(language, lines) of each fenced code block, continuation lines joined."""
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S)
    return [(lang, block.replace("\\\n", " ").splitlines()) for lang, block in blocks]


def shell_commands():
    commands = []
    for lang, lines in code_blocks(README.read_text()):
        if lang in ("", "bash", "sh"):
            commands += [shlex.split(line, comments=True) for line in lines if line.strip()]
    return [c for c in commands if c]


def test_readme_is_short_and_has_commands():
    assert len(README.read_text().splitlines()) <= 200
    heads = {words[0] for words in shell_commands()}
    assert {"visionattn", "make", "python", "pip"} <= heads


def test_visionattn_commands_parse():
    seen = set()
    for words in shell_commands():
        if words[0] != "visionattn":
            continue
        name, args = words[1], words[2:]
        assert name in cli.SUBCOMMANDS, words
        seen.add(name)
        if cli.SUBCOMMANDS[name].passthrough:  # LightningCLI: its own parser; the configs must exist
            configs = [args[i + 1] for i, a in enumerate(args) if a == "--config"]
            assert configs, words
            assert all((ROOT / c).is_file() for c in configs), words
        else:
            cli.subcommand_parser(name).parse_args(args)  # SystemExit on an unknown flag or a missing one
    assert {"detect", "annotations", "loso", "train", "evaluate", "features"} <= seen


def test_make_targets_and_scripts_exist():
    makefile = (ROOT / "Makefile").read_text()
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    extras = set(cfg["options.extras_require"])
    for words in shell_commands():
        if words[0] == "make":
            for target in words[1:]:
                assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), target
        if words[0] == "python":
            assert (ROOT / words[1]).is_file(), words
        if words[0].startswith("tools/"):
            assert (ROOT / words[0]).is_file(), words
        if words[:2] == ["pip", "install"]:
            for word in words[2:]:
                for extra in re.findall(r"\.\[([\w,]+)\]", word):
                    assert set(extra.split(",")) <= extras, word
        for word in words:
            if REPO_PATH.match(word):
                assert (ROOT / word).exists(), word


def test_python_blocks_name_registered_models():
    import timm

    import visionattn  # noqa: F401

    names = []
    for lang, lines in code_blocks(README.read_text()):
        if lang == "python":
            names += re.findall(r'create_model\("([\w.]+)"', "\n".join(lines))
    assert "resnet50_mca_s" in names
    for name in names:
        assert timm.is_model(name), name


@pytest.mark.parametrize("page", [README] + sorted((ROOT / "docs").glob("*.md")) + [ROOT / "data" / "README.md"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"^[a-z]+://", target) or target.startswith("#"):
            continue
        assert (page.parent / target.split("#", 1)[0]).exists(), f"{page.name}: {target}"
