"""Export: the production refit and the storefront files (recommendations, similar products, schemas)."""
