"""Index a folder: scan → diff against the store → rasterise → encode (or paint the text layer) → store.

Incremental by construction: a file whose size and mtime are unchanged is skipped without reading it;
a changed one is re-hashed, and content already indexed (a rename, a copy, a touch) only gets a path
row. Documents whose files disappeared are removed last, after renames have been linked, so a rename
never re-encodes anything. Each document is written all-or-nothing by the store; a bad file is recorded
with its reason and the run goes on.

Whatever the folder holds, every entry that looks like a document ends as one recorded outcome: indexed
(with a warning when its extension disagrees with its content, or when it is damaged and only its
readable pages are kept), or failed with the reason, including what the walk itself meets: symbolic link
loops, dangling links, links to folders (not followed), folders that cannot be listed, special files.
File names need not be UTF-8 (the store keeps them losslessly).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadDocument
from ..pathnames import shown
from ..reports import IndexReport, ProgressEvent
from ..storage.records import DocumentNotes
from ..tokenocr_model.interface import TokenEncoder
from .readahead import ReadAhead
from .skew import unrotate_grid
from .sources import DocumentReader, RasterPage, extension_warning, is_candidate
from .textlayer import TextLayerPainter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexOptions:
    text_layer: bool = True  # build born-digital pages from their text layer
    batch_size: int = 4
    max_page_pixels: int = 60_000_000
    text_threshold: float = 0.5  # cells whose text probability is below are not indexed
    rescale_images: bool = True  # shrink large images (300 dpi scans, photos) to the model's text size
    # a new index stores model-read cells with the model's product quantiser (its ``cell_codebook``), not int8
    product_quantise: bool = False


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    return hash_and_head(path, chunk)[0]


def hash_and_head(path: Path, chunk: int = 1 << 20) -> tuple[str, bytes]:
    """The file's sha256 and its first bytes (enough to sniff its kind), in one read."""
    h = hashlib.sha256()
    head = b""
    with path.open("rb") as f:
        while block := f.read(chunk):
            if not head:
                head = block[:2048]
            h.update(block)
    return h.hexdigest(), head


@dataclass
class FolderWalk:
    """What a walk found: candidate document files, and entries that cannot be indexed with the reason."""

    files: list[Path] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)


_SPECIAL = [
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
]


def _entry_problem(path: Path) -> str | None:
    """Why a folder entry that is not a folder cannot be read as a document, or None if it can be (a regular
    file, or a link to one). Broken links are reported whatever their name: what they pointed to is unknown."""
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            try:
                st = path.stat()
            except OSError as e:
                if e.errno == errno.ELOOP:
                    return "a symbolic link loop (the link leads back to itself): fix or remove the link"
                if e.errno == errno.ENOENT:
                    return f"a dangling symbolic link: its target {os.readlink(path)} does not exist"
                return f"a symbolic link whose target cannot be read: {e.strerror or e}"
    except OSError as e:
        return f"unreadable: {e.strerror or e}"
    if stat.S_ISREG(st.st_mode) or not is_candidate(path):
        return None
    kind = next((name for test, name in _SPECIAL if test(st.st_mode)), "an unknown kind of file")
    return f"not a regular file ({kind})"


LINKED_FOLDER = "a symbolic link to a folder: not followed (index the folder it points to itself)"


def walk_folder(root: Path) -> FolderWalk:
    """Candidate documents below ``root`` (recursively, hidden entries skipped, links to folders not
    followed) and, for every entry that looks like one but cannot be read, the reason."""
    walk = FolderWalk()

    def consider(p: Path) -> None:
        problem = _entry_problem(p)
        if problem is not None:
            walk.problems.append((p, problem))
        elif is_candidate(p):
            walk.files.append(p)

    if not root.is_dir():
        consider(root)
        return walk

    def unlistable(e: OSError) -> None:
        walk.problems.append(
            (
                Path(e.filename or root),
                f"cannot list the folder: {e.strerror or e}; the documents in it are not indexed",
            )
        )

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlistable, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for d in [d for d in dirnames if (here / d).is_symlink()]:
            dirnames.remove(d)  # os.walk would not follow it either: say so
            walk.problems.append((here / d, LINKED_FOLDER))
        for name in sorted(filenames):
            if not name.startswith("."):
                consider(here / name)
    return walk


def _under_any(key: str, wanted: set[str]) -> bool:
    """Whether the recorded path ``key`` is one of the paths ``wanted`` or lies below one (one set lookup per
    folder above it: a watcher's batch may name thousands of paths, the index may hold 10^5)."""
    here = key
    while True:
        if here in wanted:
            return True
        parent = os.path.dirname(here)
        if parent == here:
            return False
        here = parent


def walk_documents(root: Path) -> list[Path]:
    """Candidate document files below ``root`` (see :func:`walk_folder`, which also says what it skipped)."""
    return walk_folder(root).files


class FolderIndexer:
    """Runs one index pass; the encoder and store are given, never created here."""

    def __init__(
        self,
        encoder: TokenEncoder,
        store,
        options: IndexOptions,
        progress: Callable[[ProgressEvent], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.encoder = encoder
        self.store = store
        self.opt = options
        self.progress = progress
        self.cancel = cancel
        self.painter = TextLayerPainter(encoder)

    # ------------------------------------------------------------------ planning
    def index(self, root: Path, files: list[Path] | None = None, prune: bool = True) -> IndexReport:
        """Bring the index up to date with ``root`` (or only ``files`` below it, without pruning)."""
        root = root.resolve()
        given = None if files is None else list(files)
        return self._locked_pass(
            root, lambda: walk_folder(root) if given is None else FolderWalk(files=given), [root] if prune else []
        )

    def update(self, root: Path, paths: Iterable[Path]) -> IndexReport:
        """Bring the index up to date with these ``paths`` below ``root`` — files or folders that appeared,
        changed, moved or vanished — exactly as :meth:`index` of the whole root would for them, without
        walking the rest of the root (a folder watcher passes the paths its events named). A folder is
        walked; a path that no longer exists forgets what was recorded at or under it."""
        root = root.resolve()
        scopes = list(dict.fromkeys(Path(p).absolute() for p in paths))

        def walk_scopes() -> FolderWalk:  # walked once the home is ours: what another indexer did is seen
            walk = FolderWalk()
            for p in scopes:
                if p.is_symlink() and p.is_dir():  # what the walk of the whole root says of it
                    walk.problems.append((p, LINKED_FOLDER))
                elif os.path.lexists(p):
                    found = walk_folder(p)
                    walk.files += found.files
                    walk.problems += found.problems
            return walk

        return self._locked_pass(root, walk_scopes, scopes)

    def _locked_pass(self, root: Path, walk: Callable[[], FolderWalk], scopes: list[Path]) -> IndexReport:
        """One pass, holding the home's indexer lock (:mod:`.homelock`: one indexer per home at a time)."""
        from .homelock import indexer_lock

        home = getattr(self.store, "home", None)
        if home is None:  # a store without a home folder (tests' doubles): nothing to share it with
            return self._pass(root, walk(), scopes)
        with indexer_lock(home, cancel=self.cancel) as held:
            if not held:  # cancelled while another indexer had the home
                return IndexReport()
            return self._pass(root, walk(), scopes)

    def _pass(self, root: Path, walk: FolderWalk, scopes: list[Path]) -> IndexReport:
        """Index what ``walk`` found below ``root``; forget recorded paths at or under ``scopes`` it did not
        see (gone, or failures it no longer reports)."""
        t0 = time.perf_counter()
        codebook = getattr(self.encoder, "cell_codebook", None) if self.opt.product_quantise else None
        self.store.ensure_model(self.encoder.info, codebook, getattr(self.encoder, "vocabulary", None))
        report = IndexReport()
        on_disk: list[Path] = []
        for p in walk.files:  # a link is indexed under its target's path
            try:
                on_disk.append(p.resolve(strict=True) if p.is_symlink() else p.absolute())
            except (OSError, RuntimeError):  # broken since the walk, or given broken: say how
                walk.problems.append((p, _entry_problem(p) or "unreadable: the link cannot be resolved"))
        problems = [(p.absolute(), reason) for p, reason in walk.problems]
        report.files_seen = len(on_disk) + len(problems)
        known = self.store.known_files()
        run_id = self.store.begin_run(str(root))
        todo: list[tuple[Path, str, int, int, list[str]]] = []  # (path, sha, size, mtime_ns, warnings)
        status = "failed"
        try:
            for path, reason in problems:
                rec = known.get(str(path))
                if rec is not None and rec.status == "failed" and rec.reason == reason:
                    report.unchanged += 1
                else:
                    self._fail(report, path, 0, 0, reason, None, run_id)
            for path in on_disk:
                key = str(path)
                try:
                    st = path.stat()
                except OSError as e:
                    self._fail(report, path, 0, 0, f"unreadable: {e.strerror or e}", None, run_id)
                    continue
                rec = known.get(key)
                if rec is not None and rec.size == st.st_size and rec.mtime_ns == st.st_mtime_ns:
                    report.unchanged += 1
                    continue
                try:
                    sha, head = hash_and_head(path)
                except OSError as e:
                    self._fail(report, path, st.st_size, st.st_mtime_ns, f"unreadable: {e.strerror or e}", None, run_id)
                    continue
                warnings = [w] if (w := extension_warning(path, head)) else []
                if rec is not None:
                    self.store.unlink_path(key)  # changed or touched: re-link or re-index below
                doc_id = self.store.doc_for_content(sha)
                if doc_id is not None:
                    self.store.link_path(doc_id, key, st.st_size, st.st_mtime_ns, warnings)
                    report.warnings += [(key, w) for w in warnings]
                    if rec is not None and rec.sha256 == sha:
                        report.unchanged += 1
                    else:
                        report.duplicates += 1
                    continue
                todo.append((path, sha, st.st_size, st.st_mtime_ns, warnings))
                if rec is not None:
                    report.updated += 1
                else:
                    report.added += 1
            if scopes:
                # forget what this pass did not see: paths that are gone, and failures it no longer reports
                # (a folder that can be listed again, a link that was mended)
                seen = {str(p) for p in on_disk} | {str(p) for p, _ in problems}
                wanted = {str(p) for p in scopes}
                for key, rec in known.items():
                    if (
                        key not in seen
                        and _under_any(key, wanted)
                        and (rec.status == "failed" or not Path(key).exists())
                    ):
                        self.store.unlink_path(key)
                        report.removed += 1
            self._encode_all(todo, report, run_id)
            status = "cancelled" if self._cancelled() else "ok"
        finally:
            report.seconds = time.perf_counter() - t0
            self.store.finish_run(
                run_id,
                status=status,
                files=report.files_seen,
                added=report.added,
                updated=report.updated,
                removed=report.removed,
                failed=len(report.failed),
                pages=report.pages,
                seconds=report.seconds,
            )
        return report

    def _cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def _fail(
        self, report: IndexReport, path: Path, size: int, mtime_ns: int, reason: str, sha: str | None, run_id: int
    ) -> None:
        log.warning("skipped %s: %s", shown(str(path)), reason)
        report.failed.append((str(path), reason))
        self.store.record_failure(str(path), size, mtime_ns, reason, sha256=sha, run_id=run_id)

    # ------------------------------------------------------------------ encoding
    def _encode_all(self, todo: list[tuple[Path, str, int, int, list[str]]], report: IndexReport, run_id: int) -> None:
        pages_total = 0
        for path, *_ in todo:  # cheap page counts for the progress bar (bad files count 1)
            try:
                with DocumentReader(path, self.opt.max_page_pixels) as r:
                    pages_total += r.page_count
            except BadDocument:
                pages_total += 1
        t0 = time.perf_counter()
        state = {"pages": 0}

        def tick(current: str | None, files_done: int) -> None:
            if self.progress is not None:
                dt = time.perf_counter() - t0
                self.progress(
                    ProgressEvent(
                        files_done,
                        len(todo),
                        state["pages"],
                        max(pages_total, state["pages"]),
                        state["pages"] / dt if dt > 0 else 0.0,
                        current,
                        len(report.failed),
                    )
                )

        tick(None, 0)

        def read(reader: DocumentReader) -> Iterator[RasterPage]:
            return reader.pages(
                self.encoder.dpi, self.opt.text_layer, rescale=self.opt.rescale_images, grey=self.encoder.grey
            )

        # the next pages are read in one background thread and encoded in another while these are stored
        paths = [t[0] for t in todo]
        depth = self.opt.batch_size
        with ReadAhead(paths, read, self.opt.max_page_pixels, depth=depth, then=self._page_records) as ahead:
            for i, (path, sha, size, mtime_ns, warnings) in enumerate(todo):
                if self._cancelled():
                    break
                n_before = state["pages"]
                per_doc = {"text": 0, "vision": 0}
                notes = DocumentNotes(warnings=list(warnings))
                try:
                    family = ahead.open()
                    # the callback runs while this document is written, within this iteration
                    counted = self._count(ahead.pages(), state, per_doc, lambda: tick(str(path), i))  # noqa: B023
                    self.store.write_document(
                        sha,
                        str(path),
                        size,
                        mtime_ns,
                        family,
                        self._noting_partial(counted, ahead, notes),
                        run_id,
                        notes=notes,
                    )
                    report.pages_text += per_doc["text"]
                    report.pages_vision += per_doc["vision"]
                    report.warnings += [(str(path), w) for w in [*notes.warnings, notes.partial] if w]
                except Exception as e:  # a bad file (or a library error on one) must not stop the folder
                    state["pages"] = n_before
                    reason = str(e) if isinstance(e, BadDocument) else f"{type(e).__name__}: {e}"
                    log.debug("failure details for %s", path, exc_info=True)
                    self._fail(report, path, size, mtime_ns, reason, sha, run_id)
                tick(str(path), i + 1)
        report.pages = state["pages"]

    @staticmethod
    def _noting_partial(records: Iterable, ahead: ReadAhead, notes: DocumentNotes) -> Iterator:
        """``records``, then what of the document could not be read into ``notes`` (known after its last page,
        before the store commits it)."""
        yield from records
        notes.partial = ahead.partial

    @staticmethod
    def _count(records: Iterable, state: dict, per_doc: dict, tick: Callable[[], None]) -> Iterator:
        for rec in records:
            state["pages"] += 1
            per_doc[rec.source] += 1
            yield rec
            tick()

    def _page_records(self, pages: Iterable[RasterPage]) -> Iterator:
        """PageRecords in page order; vision pages are encoded in batches (memory: one batch of images)."""
        from ..storage import PageRecord

        pending: list[RasterPage] = []

        def flush() -> Iterator[PageRecord]:
            images = [p.image for p in pending if p.image is not None]
            grids = iter(self.encoder.encode_pages(images)) if images else iter(())
            for p in pending:
                gh, gw = self.encoder.grid_shape(p.width, p.height)
                if p.image is None:
                    ys, xs, feats = self.painter.paint(p.words or [], gh, gw)
                    yield PageRecord(
                        p.page_no,
                        p.width,
                        p.height,
                        "text",
                        gh,
                        gw,
                        ys,
                        xs,
                        feats,
                        text=" ".join("".join(c.c for c in w) for w in p.words or []),
                    )
                else:
                    g = next(grids)
                    if p.skew:  # encoded straightened: the features go back onto the page as it is
                        g = unrotate_grid(g, p.skew, (p.width, p.height), p.image.size, (gh, gw))
                    gh, gw = g.shape
                    ys, xs = np.nonzero(g.text >= self.opt.text_threshold)
                    feats = np.asarray(g.features[ys, xs], dtype=np.float32)
                    yield PageRecord(
                        p.page_no, p.width, p.height, "vision", gh, gw, ys.astype(np.int32), xs.astype(np.int32), feats
                    )
            pending.clear()

        for page in pages:
            pending.append(page)
            if sum(p.image is not None for p in pending) >= self.opt.batch_size:
                yield from flush()
        yield from flush()
