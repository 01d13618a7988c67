"""The one interface between the engine and any token-level text-image model.

The engine (indexer, storage, search) only ever sees these types; a model (the official TokenOCR, our
embedded ``mini`` model, a test model) implements :class:`TokenEncoder` and never sees SQL or FAISS.

Coordinates: a :class:`FeatureGrid` always covers the *whole* page image uniformly, so cell ``(x, y)``
of an ``H x W`` grid is the normalised page box ``[x/W, y/H, (x+1)/W, (y+1)/H]`` (origin top-left).
Models whose preprocessing resizes without keeping the aspect ratio (TokenOCR's dynamic tiling) satisfy
this by construction; others must pad/crop back before returning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

# page images rendered at the dpi given, for a model that measures its activations on fixed pages (the
# mini model's int8 inference); the engine passes tokensearch.samples.calibration_pages
CalibrationPages = Callable[[float], Sequence[Image.Image]]


@dataclass(frozen=True)
class Token:
    """One BPE token of a text, with the character span ``text[start:end]`` it was cut from.

    ``start``/``end`` index the *original* text given to :meth:`TokenEncoder.tokenize` (a leading space
    the tokenizer adds is not part of the span), so the engine can map a token to glyph boxes.
    """

    id: int
    piece: str
    start: int
    end: int


@dataclass
class FeatureGrid:
    """Token-level features of one page: ``features[y, x]`` is a unit vector in token-embedding space.

    ``text`` is the model's probability that a cell shows text (the engine indexes only text cells).
    """

    features: np.ndarray  # (H, W, D) float32/float16, rows L2-normalised
    text: np.ndarray  # (H, W) float32 in [0, 1]

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.features.shape[0]), int(self.features.shape[1])


@dataclass
class QueryTokens:
    """A query cut into BPE tokens and embedded: ``vectors[i]`` is the unit vector of ``tokens[i]``."""

    text: str
    tokens: list[Token]
    vectors: np.ndarray  # (T, D) float32, L2-normalised


@dataclass(frozen=True)
class ModelInfo:
    """What an index records about the model that built it (and checks before every query)."""

    name: str  # registry spec, e.g. "mini" or "tokenocr:/path"
    family: str  # "mini", "tokenocr", ...
    fingerprint: str  # sha256 of the weights (+ tokenizer), hex
    dim: int  # D of features and token vectors
    extra: dict = field(default_factory=dict)


@runtime_checkable
class QueryEmbedder(Protocol):
    """The query half of a model — all a search needs.

    Optionally also ``vocabulary() -> (V, D)``: the vectors of every token id, the competitors a match is
    verified against (``search.verify``); a model without it is searched unverified. And
    ``vocabulary_texts() -> list[str]``: each id's text, with a leading space where the token starts a
    word, for the word-end check (a match that is only the start of a longer word).
    """

    info: ModelInfo

    def embed_query(self, text: str) -> QueryTokens:
        """Tokenise a query with the model's query rule and embed it."""


@runtime_checkable
class TokenEncoder(Protocol):
    """A token-level text-image model, as the engine uses it.

    Optionally also ``cell_codebook``: a product quantiser fitted on the model's cells, as arrays ("centroids"
    (m, 256, D/m), optionally "rotation" (D, D)), which a new index then stores them with (m bytes a cell
    instead of D); None or absent: int8.
    """

    info: ModelInfo
    dpi: float  # resolution the engine rasterises PDF pages at for this model
    # the model reads grey levels only: the indexer decodes pages to one channel from the start (a JPEG's
    # luma alone, a PDF page rendered grey), so scaling and straightening move a third of the bytes
    grey: bool

    def grid_shape(self, width: int, height: int) -> tuple[int, int]:
        """(H, W) of the feature grid this model produces for a ``width x height`` px page image."""

    def encode_pages(self, images: Sequence[Image.Image]) -> list[FeatureGrid]:
        """Encode page images (any mode; the model converts) into feature grids, one per image."""

    def tokenize(self, text: str) -> list[Token]:
        """Cut *page* text into BPE tokens with character spans (words get the model's leading space)."""

    def token_vectors(self, ids: Sequence[int]) -> np.ndarray:
        """(len(ids), D) float32 unit vectors of token ids; every id of the vocabulary has one."""

    def embed_query(self, text: str) -> QueryTokens:
        """Tokenise a query with the model's query rule and embed it."""
