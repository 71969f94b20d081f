"""retina: label-then-image synthesis of diabetic-retinopathy fundus photographs."""

__version__ = "0.1.0"
