"""The nnvis_export version (one place, importable without the package's __init__)."""

__version__ = "0.1.0"
