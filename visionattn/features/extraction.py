"""Per-frame features of every video, cached on disk: frames -> face crops -> frame encoder.

The temporal part of FEDN trains on these features alone, so the expensive part (face
detection and the CNN) runs once per video and pipeline settings. Caches are
memory-mapped, keyed by the settings, written atomically and resumed after an interruption
(:mod:`visionattn.data.cache`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data.cache import ArrayCache, cache_face_rows
from ..models.mini_xception import faces_to_input
from ..utils.console import progress_wanted
from .contract import FeatureContract, feature_layout
from .frame_encoder import FrameEncoder
from .settings import FeatureSettings

class FrameFeatureExtractor:
    """Turns the items of a face front end (one per frame) into feature rows ``(k, D)``.

    The row is the concatenation, in :attr:`layout` order, of: with the landmark front end,
    ``face`` (1: a face is tracked) and ``motion_valid`` flags, then the ``motion`` stream
    (27), the ``appearance`` stream (``appearance_logits`` 7, ``appearance_embedding`` 128)
    and the ``encoder`` stream (D). Rows of frames without a face are zeros but for the flags.
    """

    def __init__(self, settings: FeatureSettings, device: str = "cpu", batch_size: int = 128):
        self.settings, self.device, self.batch_size = settings, device, batch_size
        self.dtype = np.dtype(settings.dtype)
        self.flags = settings.front_end == "landmarks"
        self.encoder: Optional[FrameEncoder] = None
        self.appearance: Optional[torch.nn.Module] = None
        if "encoder" in settings.streams:
            torch.manual_seed(settings.seed)  # a random encoder must be the same one every time
            self.encoder = FrameEncoder(settings.backbone, checkpoint_path=settings.checkpoint_path, frozen=True,
                                        image_size=settings.face_size, pool_grid=settings.pool_grid)
            self.encoder.to(device).eval()
        if "appearance" in settings.streams:
            self.appearance = appearance_model(settings.appearance_checkpoint).to(device).eval()
        self.layout = feature_layout(settings, self.encoder.num_features if self.encoder is not None else 0)

    @property
    def dim(self) -> int:
        return max(end for _, end in self.layout.values())

    @torch.inference_mode()
    def __call__(self, items: Sequence) -> np.ndarray:
        """Rows ``(len(items), dim)`` for items with an ``image`` (``(S, S, 3)`` uint8 BGR) and,
        from the landmark front end, ``present``, ``motion`` and ``motion_valid``."""
        rows = np.zeros((len(items), self.dim), np.float32)
        present = np.array([getattr(item, "present", True) for item in items], bool)
        if self.flags:
            rows[:, self.layout["face"][0]] = present
            rows[:, self.layout["motion_valid"][0]] = [item.motion_valid for item in items]
        if "motion" in self.layout:
            lo, hi = self.layout["motion"]
            rows[:, lo:hi] = np.stack([item.motion for item in items])
        faces = np.flatnonzero(present)
        if len(faces) and (self.appearance is not None or self.encoder is not None):
            crops = np.stack([items[i].image for i in faces])
            if self.appearance is not None:
                logits, embedding = self._appearance(crops)
                rows[faces, slice(*self.layout["appearance_logits"])] = logits
                rows[faces, slice(*self.layout["appearance_embedding"])] = embedding
            if self.encoder is not None:
                feats = self.encoder.encode_frames(crops, batch_size=self.batch_size)
                rows[faces, slice(*self.layout["encoder"])] = feats.float().cpu().numpy()
        return rows.astype(self.dtype)

    def _appearance(self, crops: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        logits, embedding = [], []
        for i in range(0, len(crops), self.batch_size):
            x = faces_to_input(crops[i:i + self.batch_size], color="bgr").to(self.device)
            fmap = self.appearance.forward_features(x)
            logits.append(self.appearance.forward_head(fmap).float().cpu().numpy())
            embedding.append(self.appearance.forward_head(fmap, pre_logits=True).float().cpu().numpy())
        return np.concatenate(logits), np.concatenate(embedding)


def appearance_model(checkpoint: Optional[str] = None) -> torch.nn.Module:
    """The FER2013 mini-Xception with fer's weights, or the weights file ``checkpoint``."""
    import timm

    if checkpoint is None:
        return timm.create_model("mini_xception_fer2013", pretrained=True)
    custom = str(checkpoint).endswith((".h5", ".hdf5"))
    return timm.create_model("mini_xception_fer2013", pretrained=True,
                             pretrained_cfg_overlay=dict(file=str(checkpoint), custom_load=custom))


def extract_features(
    sources: Dict[str, Tuple[str, float]], cache_root: Path, contract: FeatureContract,
    device: str = "cpu", progress: bool = True,
) -> ArrayCache:
    """Cache the feature rows of ``contract`` for ``sources`` (video id -> (frame folder or video
    file, its frame rate; 0 if a video file should say)), at the contract's model rate (videos at
    another rate are resampled); returns the cache. Videos already cached are skipped; an
    interrupted video resumes at its last chunk."""
    cache = ArrayCache(cache_root, contract.cache_key())
    todo = {vid: src for vid, src in sources.items() if not cache.exists(vid)}
    if not todo:
        return cache
    extractor = FrameFeatureExtractor(contract.settings, device=device)
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="frame features", unit="video", disable=not progress_wanted(progress))
    for vid, (src, source_fps) in todo.items():
        _, report = cache_face_rows(src, cache, vid, contract.face_pipeline(), extractor, (extractor.dim,),
                                    extractor.dtype, source_fps=source_fps or contract.model_fps,
                                    model_fps=contract.model_fps)
        if not report.face_found:
            bar.write(f"warning: {src}: no face found in any frame")
        bar.update(1)
    bar.close()
    return cache
