"""The package version, in the lowest layer so that every part can record it without a cycle."""

__version__ = "0.1.0"
