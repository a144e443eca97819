"""Models: the fit-window data, ranking utilities and one module per recommender."""
