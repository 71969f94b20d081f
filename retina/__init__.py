"""retina: label-then-image synthesis of diabetic-retinopathy fundus photographs."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `from retina import Pipeline` without importing torch for `import retina` (the CLI's start-up stays fast).
    if name in ("Pipeline", "Batch"):
        from retina import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'retina' has no attribute {name!r}")


__all__ = ["Batch", "Pipeline", "__version__"]
