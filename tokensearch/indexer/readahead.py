"""Read and encode the next pages while the current ones are stored.

Rasterising a PDF page, decoding a scan and storing a page's features (SQL rows, feature blobs, the
vector index) each run on one core; the encoder's convolutions use them all but leave gaps between
layers. Two background threads work ahead of the consumer, each through a small bounded queue: the
first opens the documents of an index pass in order and reads their pages (``read(reader)``: decoded,
scaled, straightened), the second turns each document's pages into whatever ``then`` makes of them (the
indexer: encoded page records). Decoding the next scan thus overlaps the encoding of this one, and both
overlap the storing, instead of running between its steps. The consumer sees each document exactly as
if it had read it itself: its kind, then its items in order, and a
:class:`~tokensearch.errors.BadDocument` (or any other error) at the point where reading or encoding
failed, so a bad file still fails alone; once its items are all taken, :attr:`ReadAhead.partial` says
what of it could not be read (the reader's :attr:`~.sources.DocumentReader.partial`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from .sources import DocumentReader

T = TypeVar("T")


@dataclass
class _Opened:
    family: str


@dataclass
class _End:
    """The last item of a document."""

    partial: str | None = None


_END = _End()


@dataclass
class _Failed:
    error: BaseException


class _Stopped(Exception):
    """The consumer left: a background thread ends without handing on anything more."""


class ReadAhead(Generic[T]):
    """Documents of ``paths`` with their items made ahead by two threads: ``read(reader)`` gives a document's
    pages, ``then(pages)`` (default: the pages themselves) its items, at most one page and ``depth`` items
    early.

    Use as a context manager; take the documents in order with :meth:`open`, and iterate each one's
    :meth:`pages` (leaving a document early is allowed: its remaining pages are skipped)."""

    def __init__(
        self,
        paths: Sequence[Path],
        read: Callable[[DocumentReader], Iterator[Any]],
        max_page_pixels: int,
        depth: int = 4,
        then: Callable[[Iterator[Any]], Iterable[T]] | None = None,
    ) -> None:
        self._paths = list(paths)
        self._read = read
        self._then = then
        self._max_page_pixels = max_page_pixels
        # one page read ahead is enough to overlap the next decode with this encoding; each more is a page
        # image held in memory beside the batch being encoded
        self._read_queue: queue.Queue = queue.Queue(maxsize=1)  # reading -> making items
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))  # making items -> the consumer
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._read_all, name="tokensearch-read", daemon=True),
            threading.Thread(target=self._produce, name="tokensearch-readahead", daemon=True),
        ]
        self._next = 0  # index of the next document to open
        self._in_document = False  # a document's pages are still in the queue
        self.partial: str | None = None  # of the document last read to its end (see the module doc)

    def __enter__(self) -> ReadAhead[T]:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while any(t.is_alive() for t in self._threads):  # unblock a thread waiting on a full queue
            for q in (self._queue, self._read_queue):
                try:
                    q.get(timeout=0.05)
                except queue.Empty:
                    pass
        for t in self._threads:
            t.join()

    # ------------------------------------------------------------------ background threads
    def _put(self, q: queue.Queue, item: object) -> None:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def _take(self) -> object:
        while not self._stop.is_set():
            try:
                return self._read_queue.get(timeout=0.1)
            except queue.Empty:
                continue
        raise _Stopped

    def _read_all(self) -> None:
        """First thread: open each document and read its pages."""
        q = self._read_queue
        try:
            for path in self._paths:
                try:
                    reader = DocumentReader(path, self._max_page_pixels)
                except BaseException as e:  # noqa: BLE001 - handed to the consumer, which decides
                    self._put(q, _Failed(e))
                    self._put(q, _END)
                    continue
                with reader:
                    self._put(q, _Opened(reader.family))
                    try:
                        for page in self._read(reader):
                            self._put(q, page)
                    except _Stopped:
                        raise
                    except BaseException as e:  # noqa: BLE001
                        self._put(q, _Failed(e))
                    partial = reader.partial
                self._put(q, _End(partial))
        except _Stopped:
            return

    def _document_pages(self, end: list[_End]) -> Iterator[object]:
        """The pages of the document being made, from the reading thread; raises where reading it failed.
        Its last item (with what could not be read) goes into ``end``."""
        while True:
            item = self._take()
            if isinstance(item, _End):
                end.append(item)
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def _produce(self) -> None:
        """Second thread: make each document's items from its pages."""
        try:
            for _ in self._paths:
                first = self._take()
                if not isinstance(first, _Opened):  # it could not be opened: its error, then its end
                    self._put(self._queue, first)
                    self._put(self._queue, self._take())
                    continue
                self._put(self._queue, first)
                end: list[_End] = []
                pages = self._document_pages(end)
                try:
                    for item in pages if self._then is None else self._then(pages):
                        self._put(self._queue, item)
                except _Stopped:
                    raise
                except BaseException as e:  # noqa: BLE001 - a failure of reading or making: the consumer's
                    self._put(self._queue, _Failed(e))
                while not end:  # making failed or stopped early: the rest of the document's pages go unused
                    item = self._take()
                    if isinstance(item, _End):
                        end.append(item)
                self._put(self._queue, end[0])
        except _Stopped:
            return

    # ------------------------------------------------------------------ consumer (caller's thread)
    def _get(self) -> object:
        return self._queue.get()

    def open(self) -> str:
        """Move on to the next document and return its family ("pdf" / "image"); raises its open error."""
        if self._in_document:  # the caller left the previous document early: skip the rest of it
            for _ in self._drain():
                pass
        if self._next >= len(self._paths):
            raise IndexError("no more documents")
        self._next += 1
        self.partial = None
        item = self._get()
        if isinstance(item, _Failed):
            self._get()  # its _END
            raise item.error
        assert isinstance(item, _Opened)
        self._in_document = True
        return item.family

    def pages(self) -> Iterator[T]:
        """The items of the document last opened, in order; raises where reading it failed."""
        for item in self._drain():
            if isinstance(item, _Failed):
                for _ in self._drain():
                    pass
                raise item.error
            yield cast(T, item)

    def _drain(self) -> Iterator[object]:
        while self._in_document:
            item = self._get()
            if isinstance(item, _End):
                self._in_document = False
                self.partial = item.partial
                return
            yield item
