"""Seeing inside the model: per-layer norms and updates, activations, the first NaN/inf."""
