"""Per-frame features: how they are made (:mod:`.settings`), extracted and cached
(:mod:`.extraction`), and the frame encoder's expression pretraining (:mod:`.pretraining`).

This package sits below both training (:mod:`visionattn.spotting`) and detection
(:mod:`visionattn.inference`), so that the video tool computes exactly the features a model
was trained on without depending on the training code. Import submodules explicitly.
"""
