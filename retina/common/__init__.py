"""Shared foundations: the label schema, the canonical data set format, checkpoints and run folders."""
