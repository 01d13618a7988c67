"""Read and encode the next pages while the current ones are stored.

Rasterising a PDF page, decoding a scan and storing a page's features (SQL rows, feature blobs, the
vector index) each run on one core; the encoder's convolutions use them all but leave gaps between
layers. One background thread opens the documents of an index pass in order and turns their pages into
whatever ``read`` makes of them (the indexer: encoded page records) in a small bounded queue, so reading
and encoding overlap the storing instead of running between its steps. The consumer sees each document
exactly as if it had read it itself: its kind, then its items in order, and a
:class:`~tokensearch.errors.BadDocument` (or any other error) at the point where reading failed, so a
bad file still fails alone; once its items are all taken, :attr:`ReadAhead.partial` says what of it
could not be read (the reader's :attr:`~.sources.DocumentReader.partial`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar, cast

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


class ReadAhead(Generic[T]):
    """Documents of ``paths`` with their items (``read(reader)``) made ahead by one thread, at most
    ``depth`` items early.

    Use as a context manager; take the documents in order with :meth:`open`, and iterate each one's
    :meth:`pages` (leaving a document early is allowed: its remaining pages are skipped)."""

    def __init__(
        self, paths: Sequence[Path], read: Callable[[DocumentReader], Iterator[T]], max_page_pixels: int, depth: int = 4
    ) -> None:
        self._paths = list(paths)
        self._read = read
        self._max_page_pixels = max_page_pixels
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="tokensearch-readahead", daemon=True)
        self._next = 0  # index of the next document to open
        self._in_document = False  # a document's pages are still in the queue
        self.partial: str | None = None  # of the document last read to its end (see the module doc)

    def __enter__(self) -> ReadAhead[T]:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()

    # ------------------------------------------------------------------ producer (background thread)
    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        for path in self._paths:
            try:
                reader = DocumentReader(path, self._max_page_pixels)
            except BaseException as e:  # noqa: BLE001 - handed to the consumer, which decides
                if not (self._put(_Failed(e)) and self._put(_END)):
                    return
                continue
            with reader:
                if not self._put(_Opened(reader.family)):
                    return
                try:
                    for item in self._read(reader):
                        if not self._put(item):
                            return
                except BaseException as e:  # noqa: BLE001
                    if not self._put(_Failed(e)):
                        return
                partial = reader.partial
            if not self._put(_End(partial)):
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
