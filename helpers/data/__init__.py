"""Data: the star-schema contract, validation, the calendar, the sources, build and load."""
