"""Query → ranked pages with the boxes where the whole query is written."""

from .localize import Frame, Occurrence, dense_maps, locate
from .query import Unit, case_variants, normalise_query, parse_query
from .searcher import Hit, Searcher, SearchOptions, SearchResult

__all__ = [
    "Frame",
    "Hit",
    "Occurrence",
    "SearchOptions",
    "SearchResult",
    "Searcher",
    "Unit",
    "case_variants",
    "dense_maps",
    "locate",
    "normalise_query",
    "parse_query",
]
