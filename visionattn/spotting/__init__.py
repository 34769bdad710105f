"""Spotting methods: per-frame evidence -> expression intervals.

``flow``: the training-free optical-flow spotter. ``stitching``: FEDN's window detections
stitched across a long video. Training lives in :mod:`visionattn.training`; this package
never imports it.
"""
