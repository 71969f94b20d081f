"""Downstream benchmarks: segmentation, grading and vessel pre-training with and without synthetic data."""
