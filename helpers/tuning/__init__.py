"""Tuning: stages of the temporal split, grids, the tune -> refit -> evaluate workflow, the model cache."""
