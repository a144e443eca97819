"""Features: customer, product and calendar features and segments, computed before a cut-off."""
