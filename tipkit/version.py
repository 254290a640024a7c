"""tipkit's version: one place, imported by the package face, records and feature-store keys."""

__version__ = "0.1.0"
