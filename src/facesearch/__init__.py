"""facesearch: self-hosted face identification."""

__version__ = "0.1.0"
