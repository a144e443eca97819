"""Serving: the recommendation API over an export folder."""
