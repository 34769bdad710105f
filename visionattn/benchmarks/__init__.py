"""Measured comparisons, run from the command line (``visionattn benchmark``)."""
