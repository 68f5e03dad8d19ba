"""gpudoctor: can this Linux server train models on its GPUs right now, and if not, what fixes it."""

__version__ = "0.1.0"
