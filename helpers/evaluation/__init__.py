"""Evaluation: relevance sets, top-K metrics and bootstrap confidence intervals."""
