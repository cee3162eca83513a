"""The embedding extractor's public home: ``from kiosk.embedding import EmbeddingExtractor``."""

from __future__ import annotations

from kiosk.vision.extractor import EmbeddingExtractor
from kiosk.vision.preprocess import preprocess

__all__ = ["EmbeddingExtractor", "preprocess"]
