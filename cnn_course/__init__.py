"""Helpers for the CNN course notebooks: teaching checks, plots, worked examples, data."""

__version__ = "0.1.0"
