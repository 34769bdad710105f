"""The quiet console: our dependencies' chatter is silenced by its exact text, and nothing else."""
import logging
import warnings

import pytest

from visionattn.utils.console import counted, quiet_library_chatter


@pytest.fixture
def quiet():
    quiet_library_chatter()


def _logged(logger_name: str, message: str, caplog) -> bool:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=logger_name):
        logging.getLogger(logger_name).info(message)
    return any(message in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("logger_name, message", [
    ("lightning.pytorch.utilities.rank_zero", "💡 Tip: For seamless cloud logging and experiment tracking, try ..."),
    ("lightning.pytorch.utilities.rank_zero", "GPU available: False, used: False"),
    ("lightning.pytorch.utilities.rank_zero", "TPU available: False, using: 0 TPU cores"),
    ("lightning.pytorch.utilities.rank_zero", "Loading `train_dataloader` to estimate number of stepping batches."),
    ("lightning.pytorch.utilities.rank_zero", "Restoring states from the checkpoint path at /x/epoch=3-step=64.ckpt"),
    ("lightning.fabric.utilities.seed", "Seed set to 0"),
    ("lightning.fabric.utilities.seed", "[rank: 1] Seed set to 0"),
])
def test_library_chatter_is_silenced(quiet, caplog, logger_name, message):
    assert not _logged(logger_name, message, caplog)


def test_messages_a_user_can_act_on_still_show(quiet, caplog):
    # Lightning's own advice about the user's settings and data goes through the same logger.
    assert _logged("lightning.pytorch.utilities.rank_zero",
                   "The 'train_dataloader' does not have many workers which may be a bottleneck.", caplog)
    assert _logged("visionattn", "s15_0101: no face found in any frame", caplog)


def test_dependency_warnings_are_silenced_and_user_warnings_are_not(quiet):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet_library_chatter()  # after simplefilter: our filters come first
        warnings.warn("LightningCLI's args parameter is intended to run from within Python like ...", UserWarning)
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)`",
                      DeprecationWarning)
        warnings.warn("data.features.face_size 16: faces this small lose their landmarks", UserWarning)
    texts = [str(w.message) for w in caught]
    assert texts == ["data.features.face_size 16: faces this small lose their landmarks"]


def test_jsonargparse_deprecations_are_switched_off_unless_the_user_chose(monkeypatch, quiet):
    monkeypatch.delenv("JSONARGPARSE_DEPRECATION_WARNINGS", raising=False)
    quiet_library_chatter()
    import os

    assert os.environ["JSONARGPARSE_DEPRECATION_WARNINGS"] == "off"
    monkeypatch.setenv("JSONARGPARSE_DEPRECATION_WARNINGS", "all")
    quiet_library_chatter()
    assert os.environ["JSONARGPARSE_DEPRECATION_WARNINGS"] == "all"


def test_counts_take_the_noun_form_of_their_number():
    assert [counted(n, "shot cut") for n in (0, 1, 2)] == ["0 shot cuts", "1 shot cut", "2 shot cuts"]


def test_detect_summary_line_reads_as_english():
    from types import SimpleNamespace

    from visionattn.inference.command import summary_line
    from visionattn.inference.result import DetectedInterval, VideoResult

    def result(types, cuts, gaps):
        return VideoResult(video="v.mp4", fps=30.0, width=64, height=48, face_found=True, frame_count=300,
                           duration_s=10.0, method="fedn", shot_cuts=cuts, frames_without_face=gaps,
                           intervals=[DetectedInterval(1, 2, 0.0, 0.03, t, "positive", 0.5) for t in types])

    assert summary_line(result(["micro"], [120], [(5, 5)])) == \
        "v.mp4: 1 expression (1 micro, 0 macro) in 10.0 s (fedn); 1 shot cut; 1 frame without a readable face"
    assert summary_line(result(["micro", "macro", "macro"], [], [(0, 2), (9, 9)])) == \
        "v.mp4: 3 expressions (1 micro, 2 macro) in 10.0 s (fedn); 4 frames without a readable face"
    assert summary_line(SimpleNamespace(video="v.mp4", face_found=False, frame_count=150)) == \
        "v.mp4: no face found in 150 frames; empty result written"
