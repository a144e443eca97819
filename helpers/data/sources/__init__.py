"""The three data sources: ``completejourney``, ``synthetic`` and ``files``."""
