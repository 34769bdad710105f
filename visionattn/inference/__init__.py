"""Running trained models on videos: ``visionattn detect``."""
