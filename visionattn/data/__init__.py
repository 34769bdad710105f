"""Expression data: annotation loaders, frames and faces, caches, synthetic data.

Submodules are imported directly (``from visionattn.data.datasets import load_table``) so that
importing one part does not pull in OpenCV or pandas for another.
"""
