"""tokensearch: search document folders for text in the page images with a token-level text-image model."""

__version__ = "0.1.0"
