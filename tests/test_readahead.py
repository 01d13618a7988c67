"""The read-ahead threads hand each document over as if the consumer had read it itself."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from tokensearch.errors import BadDocument
from tokensearch.indexer.readahead import ReadAhead
from tokensearch.indexer.sources import DocumentReader


def _tiff(path: Path, n: int) -> Path:
    frames = [Image.new("L", (40, 30), 255 - 20 * i) for i in range(n)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    return path


def _read(reader: DocumentReader):
    return reader.pages(150.0, use_text_layer=False, rescale=False)


def test_documents_come_in_order_with_their_pages_and_their_errors(tmp_path) -> None:
    good = _tiff(tmp_path / "a.tif", 3)
    empty = tmp_path / "b.png"
    empty.write_bytes(b"")
    other = _tiff(tmp_path / "c.tif", 2)
    with ReadAhead([good, empty, other], _read, 10**8, depth=1) as ahead:
        assert ahead.open() == "image"
        assert [p.page_no for p in ahead.pages()] == [1, 2, 3]
        with pytest.raises(BadDocument, match="empty"):
            ahead.open()
        assert ahead.open() == "image"
        assert [p.image.getpixel((0, 0)) for p in ahead.pages()] == [255, 235]
        with pytest.raises(IndexError):
            ahead.open()


@pytest.mark.parametrize("then", [None, lambda pages: (p for p in pages)], ids=["pages", "made"])
def test_a_failure_mid_document_reaches_the_consumer_after_the_pages_before_it(tmp_path, then) -> None:
    def read_two_then_fail(reader: DocumentReader):
        for page in _read(reader):
            if page.page_no == 3:
                raise BadDocument("frame 3 is corrupt")
            yield page

    docs = [_tiff(tmp_path / "a.tif", 4), _tiff(tmp_path / "b.tif", 1)]
    with ReadAhead(docs, read_two_then_fail, 10**8, depth=2, then=then) as ahead:
        ahead.open()
        seen = []
        with pytest.raises(BadDocument, match="frame 3"):
            for p in ahead.pages():
                seen.append(p.page_no)
        assert seen == [1, 2]
        ahead.open()  # the next document is unaffected
        assert [p.page_no for p in ahead.pages()] == [1]


def test_leaving_a_document_early_skips_the_rest_of_its_pages(tmp_path) -> None:
    docs = [_tiff(tmp_path / "a.tif", 5), _tiff(tmp_path / "b.tif", 2)]
    with ReadAhead(docs, _read, 10**8, depth=1) as ahead:
        ahead.open()
        first = next(iter(ahead.pages()))
        assert first.page_no == 1
        ahead.open()  # pages 2..5 of a.tif are dropped, b.tif comes next
        assert [p.page_no for p in ahead.pages()] == [1, 2]


def test_stopping_early_ends_the_thread_even_when_the_queue_is_full(tmp_path) -> None:
    docs = [_tiff(tmp_path / f"{i}.tif", 3) for i in range(5)]
    with ReadAhead(docs, _read, 10**8, depth=1) as ahead:
        ahead.open()
        time.sleep(0.2)  # the producer fills the queue and waits
    names = ("tokensearch-read", "tokensearch-readahead")
    assert not any(t.name in names and t.is_alive() for t in threading.enumerate())


def _numbers(pages):
    """A second stage as the indexer's encoder is one: it consumes the pages and makes its own items."""
    for page in pages:
        if page.page_no == 2 and page.image.getpixel((0, 0)) == 235:
            raise ValueError("the encoder failed on page 2")
        yield page.page_no * 10


def test_items_are_made_from_the_pages_read_ahead_and_a_making_failure_stays_with_its_document(tmp_path) -> None:
    docs = [_tiff(tmp_path / "a.tif", 4), _tiff(tmp_path / "b.tif", 1), _tiff(tmp_path / "c.tif", 2)]
    with ReadAhead(docs, _read, 10**8, depth=1, then=_numbers) as ahead:
        assert ahead.open() == "image"
        seen = []
        with pytest.raises(ValueError, match="page 2"):
            for n in ahead.pages():
                seen.append(n)
        assert seen == [10]
        ahead.open()
        assert list(ahead.pages()) == [10]
        ahead.open()
        with pytest.raises(ValueError, match="page 2"):
            list(ahead.pages())
        with pytest.raises(IndexError):
            ahead.open()


def test_a_read_failure_reaches_the_consumer_through_the_making_stage(tmp_path) -> None:
    empty = tmp_path / "a.png"
    empty.write_bytes(b"")
    docs = [empty, _tiff(tmp_path / "b.tif", 1)]
    with ReadAhead(docs, _read, 10**8, depth=1, then=_numbers) as ahead:
        with pytest.raises(BadDocument, match="empty"):
            ahead.open()
        assert ahead.open() == "image"
        assert list(ahead.pages()) == [10]
