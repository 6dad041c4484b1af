"""burnerkit: a burner phone in software."""

__version__ = "0.1.0"

__all__ = ["__version__"]
