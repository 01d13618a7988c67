"""The feature store: every kept cell of every page, int8-quantised (or product-quantised where the index's codec
has a cell codebook), in append-only segment files.

Layout: ``<home>/features/seg-000001.bin``, ``seg-000002.bin``, ... Each page is one contiguous blob
(the SQL page row holds ``segment``, ``offset``, ``nbytes``), so reading a page is one seek + read::

    header  20 B   magic "TSF1", n cells (u32), d (u16), flags (u16), grid_h (u16), grid_w (u16), crc32 (u32)
    coords         flags & 1: bit mask of the grid (ceil(grid_h*grid_w/8) B, cells in raster order)
                   else: ys (u16 x n) then xs (u16 x n), raster order
    codes   n*d B  int8, each row scaled so its largest |component| is 127
            flags & 2 (palette): m (u32), m*d B int8 distinct rows, then a row index per cell
            (u8 if m <= 256 else u16) — pages built from a text layer repeat a few hundred token
            vectors over thousands of cells, so they shrink ~15x
            flags & 4 (product-quantised, model-read pages of a codec with a ``CellCode``): m (u16),
            then n*m B, each cell's centroid numbers (the codebook is the codec's, in the database)
            flags & 16 (with 2, text-layer pages of a home that keeps its text rows in SQL): the palette is
            m (u32), a width w (u8: 2 or 4), m row ids (u<w>) of the home's ``ts_text_rows`` instead of m*d B —
            a token's vector is the same on every page, and 48 B of it on each was most of a born-digital blob
    flags & 8: coords and codes as above, zlib-deflated. Kept only where it saves an eighth: a text
            layer's page (its mask and palette index are runs: ~40 % smaller), or a page of few cells whose
            mask is much of it; a model-read page's int8 codes hardly deflate (~5 %), so those stay raw
            (and are not tried unless the mask is an eighth of the page) and read as fast as before

A row's scale is not stored: rows are unit vectors and are re-normalised on decode, so only the
direction matters. Measured at d=64: 1 - cos(stored, original) 1.8e-5 mean, 5e-5 max; a query's
score moves by 6e-4 mean, 5e-3 max (tests/test_storage_vectors.py checks the bound).

Bytes after the last blob a SQL row points to are garbage of an interrupted write; the next writer to
own that segment trims them (a writer owns a segment through an exclusive flock on it).
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .codec import CellCode
from .records import PageFeatures

MAGIC = b"TSF1"
HEADER = struct.Struct("<4sIHHHHI")
FLAG_MASK = 1
FLAG_PALETTE = 2
FLAG_PQ = 4
FLAG_DEFLATE = 8
FLAG_SHARED = 16
SEGMENT_NAME = "seg-{:06d}.bin"


def quantize(feats: np.ndarray) -> np.ndarray:
    """(n, d) float -> (n, d) int8, per-row max-abs scaling to 127 (zero rows stay zero)."""
    feats = np.asarray(feats, dtype=np.float32)
    peak = np.abs(feats).max(axis=1, keepdims=True) if feats.size else np.zeros((len(feats), 1), np.float32)
    scaled = feats * (127.0 / np.maximum(peak, 1e-12))
    return np.clip(np.rint(scaled), -127, 127).astype(np.int8)


def dequantize(codes: np.ndarray) -> np.ndarray:
    """(n, d) int8 -> (n, d) float32 unit rows."""
    x = codes.astype(np.float32)
    norm = np.sqrt(np.einsum("nd,nd->n", x, x))[:, None]  # 3-4x faster than np.linalg.norm on rows
    x /= np.maximum(norm, 1e-12)
    return x


def _distinct_rows(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(palette, index) with ``palette[index] == codes``: 1-D unique of a row hash, checked exactly
    (np.unique(axis=0) costs ~15 ms for 3000 x 64 rows, this < 1 ms)."""
    weights = np.random.default_rng(7).integers(-(2**40), 2**40, size=codes.shape[1])
    key = codes.astype(np.int64) @ weights
    _, first, index = np.unique(key, return_index=True, return_inverse=True)
    palette = codes[first]
    if not np.array_equal(palette[index], codes):  # a hash collision (never seen): the slow, exact way
        palette, index = np.unique(codes, axis=0, return_inverse=True)
    return palette, index.reshape(-1)


# a home's shared palette: int8 rows -> their ids (adding the new ones), and ids -> int8 rows
RowIds = Callable[[np.ndarray], np.ndarray]
RowsOf = Callable[[np.ndarray, int], np.ndarray]  # (ids, dim)


def encode_page(
    grid_h: int,
    grid_w: int,
    ys: np.ndarray,
    xs: np.ndarray,
    feats: np.ndarray,
    cells: CellCode | None = None,
    row_ids: RowIds | None = None,
) -> bytes:
    """Sort cells into raster order, quantise (int8, or ``cells``' codes), and pack one page blob. ``row_ids``:
    a palette is stored as ids of the home's shared rows (a text layer's page, whose rows are token vectors)."""
    ys = np.asarray(ys, dtype=np.int64).reshape(-1)
    xs = np.asarray(xs, dtype=np.int64).reshape(-1)
    n = len(ys)
    if not (0 < grid_h < 65536 and 0 < grid_w < 65536):
        raise ValueError(f"grid {grid_h}x{grid_w} out of range (1..65535)")
    if feats.ndim != 2 or len(feats) != n or len(xs) != n:
        raise ValueError(f"ys {ys.shape}, xs {xs.shape} and feats {feats.shape} disagree")
    if n and (ys.min() < 0 or xs.min() < 0 or ys.max() >= grid_h or xs.max() >= grid_w):
        raise ValueError(f"cell coordinates outside the {grid_h}x{grid_w} grid")
    flat = ys * grid_w + xs
    order = np.argsort(flat, kind="stable")
    flat = flat[order]
    if n > 1 and np.any(flat[1:] == flat[:-1]):
        raise ValueError("duplicate cells in a page record")
    d = feats.shape[1]
    if cells is not None:
        body, flags_pal = struct.pack("<H", cells.m) + cells.encode(feats[order]).tobytes(), FLAG_PQ
    else:
        codes = quantize(feats[order])
        body, flags_pal = codes.tobytes(), 0
    if n > 1 and cells is None:
        palette, index = _distinct_rows(codes)
        m = len(palette)
        idx = index.reshape(-1).astype("<u1" if m <= 256 else "<u2")
        if row_ids is not None and m < 65536:
            ids = np.asarray(row_ids(palette), dtype=np.int64)
            width = 2 if ids.max() < 65536 else 4
            body = struct.pack("<IB", m, width) + ids.astype(f"<u{width}").tobytes() + idx.tobytes()
            flags_pal = FLAG_PALETTE | FLAG_SHARED
        elif m < 65536 and 4 + m * d + idx.nbytes < n * d:
            body, flags_pal = struct.pack("<I", m) + palette.tobytes() + idx.tobytes(), FLAG_PALETTE
    mask_bytes = (grid_h * grid_w + 7) // 8
    if mask_bytes < 4 * n:
        mask = np.zeros(grid_h * grid_w, dtype=bool)
        mask[flat] = True
        coords, flags = np.packbits(mask).tobytes(), FLAG_MASK
    else:
        coords, flags = ys[order].astype("<u2").tobytes() + xs[order].astype("<u2").tobytes(), 0
    payload = coords + body
    flags |= flags_pal
    # int8 or PQ codes hardly deflate: only a palette page, or a page whose cell mask or coordinates are an eighth of
    # it, can save an eighth, and a model-read page is not compressed in vain (~10 ms a page)
    if flags_pal & FLAG_PALETTE or 8 * len(coords) >= len(payload):
        deflated = zlib.compress(payload, 1)  # level 1: within 2 % of level 9's size, several times faster
        if len(deflated) <= len(payload) * 7 // 8:
            payload, flags = deflated, flags | FLAG_DEFLATE
    return HEADER.pack(MAGIC, n, d, flags, grid_h, grid_w, zlib.crc32(payload)) + payload


def decode_page(blob: bytes, cells: CellCode | None = None, rows_of: RowsOf | None = None) -> PageFeatures:
    """A page blob's cells; ``cells``: the codec's codebook, which a product-quantised blob needs; ``rows_of``:
    the home's shared rows, which a palette of row ids needs."""
    magic, n, d, flags, grid_h, grid_w, crc = HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise ValueError("not a feature blob (bad magic)")
    payload = memoryview(blob)[HEADER.size :]
    if zlib.crc32(payload) != crc:
        raise ValueError("feature blob checksum mismatch")
    if flags & FLAG_DEFLATE:
        payload = memoryview(zlib.decompress(payload))
    if flags & FLAG_MASK:
        mask_bytes = (grid_h * grid_w + 7) // 8
        bits = np.unpackbits(np.frombuffer(payload[:mask_bytes], dtype=np.uint8), count=grid_h * grid_w)
        flat = np.flatnonzero(bits)
        ys, xs = (flat // grid_w).astype(np.int32), (flat % grid_w).astype(np.int32)
        pos = mask_bytes
    else:
        ys = np.frombuffer(payload[: 2 * n], dtype="<u2").astype(np.int32)
        xs = np.frombuffer(payload[2 * n : 4 * n], dtype="<u2").astype(np.int32)
        pos = 4 * n
    if flags & FLAG_PQ:
        (m,) = struct.unpack_from("<H", payload, pos)
        if cells is None or cells.m != m or cells.dim != d:
            raise ValueError(f"a product-quantised page ({m} parts, dim {d}) needs the index's cell codebook")
        parts = np.frombuffer(payload[pos + 2 : pos + 2 + n * m], dtype=np.uint8).reshape(n, m)
        return PageFeatures(grid_h=grid_h, grid_w=grid_w, ys=ys, xs=xs, rows=cells.decode(parts))
    if flags & FLAG_SHARED:
        m, width = struct.unpack_from("<IB", payload, pos)
        pos += 5
        if rows_of is None:
            raise ValueError("a page whose palette names the home's shared rows needs them to be decoded")
        ids = np.frombuffer(payload[pos : pos + m * width], dtype=f"<u{width}").astype(np.int64)
        codes = np.asarray(rows_of(ids, d), dtype=np.int8)
        if codes.shape != (m, d):
            raise ValueError(f"the home's shared rows gave {codes.shape} for {m} ids of dim {d}")
        palette = dequantize(codes)
        pos += m * width
        index = np.frombuffer(payload[pos:], dtype="<u1" if m <= 256 else "<u2")
        return PageFeatures(grid_h=grid_h, grid_w=grid_w, ys=ys, xs=xs, rows=palette, index=index)
    if flags & FLAG_PALETTE:
        (m,) = struct.unpack_from("<I", payload, pos)
        pos += 4
        palette = dequantize(np.frombuffer(payload[pos : pos + m * d], dtype=np.int8).reshape(m, d))
        pos += m * d
        index = np.frombuffer(payload[pos:], dtype="<u1" if m <= 256 else "<u2")
        return PageFeatures(grid_h=grid_h, grid_w=grid_w, ys=ys, xs=xs, rows=palette, index=index)
    codes = np.frombuffer(payload[pos : pos + n * d], dtype=np.int8).reshape(n, d)
    return PageFeatures(grid_h=grid_h, grid_w=grid_w, ys=ys, xs=xs, rows=dequantize(codes))


class FeatureStore:
    """Segment files under one folder: thread-safe positional reads, one appending writer at a time."""

    def __init__(
        self,
        folder: Path,
        segment_bytes: int = 1 << 30,
        cells: Callable[[], CellCode | None] = lambda: None,
        rows_of: RowsOf | None = None,
    ):
        self.folder = Path(folder)
        self._cells = cells  # the codec's cell codebook, once there is a codec
        self._rows_of = rows_of  # the home's shared palette rows
        self.folder.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self._fds: dict[int, int] = {}
        self._retired: list[int] = []
        self._fd_lock = threading.Lock()
        # the open append transaction: segment -> size before it started
        self._pending: dict[int, int] = {}
        self._wfile: BinaryIO | None = None  # the owned segment (begin() to _release_segment())
        self._wseg: int | None = None

    # --- reading ---------------------------------------------------------------------------------
    def path(self, segment: int) -> Path:
        return self.folder / SEGMENT_NAME.format(segment)

    def segments(self) -> list[int]:
        out = []
        for p in self.folder.glob("seg-*.bin"):
            try:
                out.append(int(p.stem.split("-")[1]))
            except ValueError:
                continue
        return sorted(out)

    def _fd(self, segment: int) -> int:
        with self._fd_lock:
            fd = self._fds.get(segment)
            if fd is None:
                fd = os.open(self.path(segment), os.O_RDONLY)
                self._fds[segment] = fd
            return fd

    def read_blob(self, segment: int, offset: int, nbytes: int) -> bytes:
        blob = os.pread(self._fd(segment), nbytes, offset)
        if len(blob) != nbytes:
            raise ValueError(f"short read in feature segment {segment} at {offset}")
        return blob

    def read(self, segment: int, offset: int, nbytes: int) -> PageFeatures:
        return self.decode(self.read_blob(segment, offset, nbytes))

    def decode(self, blob: bytes) -> PageFeatures:
        """A blob of this home (its codebook and shared rows)."""
        return decode_page(blob, self._cells(), self._rows_of)

    def forget(self, segment: int) -> None:
        """Drop a cached read handle (the segment was compacted away). It is closed only at close():
        another thread may be reading through it, and a reused descriptor number would read another file."""
        with self._fd_lock:
            fd = self._fds.pop(segment, None)
            if fd is not None:
                self._retired.append(fd)

    def lock_for_compaction(self, segment: int):
        """An open file holding the segment's exclusive flock, or None if a writer owns it."""
        if segment == self._wseg:
            return None
        try:
            f = open(self.path(segment), "rb")
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return None
        return f

    def remove(self, segment: int) -> None:
        self.forget(segment)
        try:
            self.path(segment).unlink()
        except FileNotFoundError:
            pass
        _fsync_dir(self.folder)

    def total_bytes(self) -> int:
        return sum(self.path(s).stat().st_size for s in self.segments())

    # --- writing -------------------------------------------------------------------------------------
    # A writer owns one segment at a time (an exclusive flock on the file), so several processes can
    # index into one home at once without ever appending to the same file; the owner trims what an
    # interrupted writer left after the last referenced blob before appending.
    def begin(self, referenced_end: Callable[[int], int]) -> None:
        """Start appending one document. ``referenced_end(segment)`` = end of the last blob SQL rows
        point at in that segment (the owner trims the rest)."""
        if self._wfile is not None and self._wfile.tell() >= self.segment_bytes:
            self._release_segment()
        if self._wfile is None:
            self._own_segment(referenced_end)
        assert self._wfile is not None and self._wseg is not None  # _own_segment returns owning one
        self._pending = {self._wseg: self._wfile.tell()}

    def _own_segment(self, referenced_end: Callable[[int], int]) -> None:
        for seg in reversed(self.segments()[-4:]):  # reuse a recent segment nobody is writing to
            if self.path(seg).stat().st_size >= self.segment_bytes:
                continue
            f = open(self.path(seg), "r+b")
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            end = referenced_end(seg)
            if f.seek(0, os.SEEK_END) > end:
                f.truncate(end)
                os.fsync(f.fileno())
            f.seek(end)
            self._wfile, self._wseg = f, seg
            return
        while True:  # a new segment (another process may create the same number first)
            seg = (self.segments() or [0])[-1] + 1
            try:
                fd = os.open(self.path(seg), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            fcntl.flock(fd, fcntl.LOCK_EX)
            _fsync_dir(self.folder)
            self._wfile, self._wseg = os.fdopen(fd, "r+b"), seg
            return

    def append(self, blob: bytes) -> tuple[int, int, int]:
        """Append one page blob; returns (segment, offset, nbytes)."""
        assert self._wfile is not None and self._wseg is not None, "begin() first"
        offset = self._wfile.tell()
        self._wfile.write(blob)
        return self._wseg, offset, len(blob)

    def sync(self) -> None:
        """Make the appended blobs durable (before the SQL rows pointing at them commit)."""
        assert self._wfile is not None, "begin() first"
        self._wfile.flush()
        os.fsync(self._wfile.fileno())

    def commit(self) -> None:
        self._pending = {}

    def abort(self) -> None:
        """Drop what the current document appended (nobody references it)."""
        if self._wfile is not None and self._wseg is not None and self._pending:  # (set together)
            start = self._pending[self._wseg]
            try:
                self._wfile.truncate(start)
                self._wfile.seek(start)
            except OSError:  # e.g. disk full: give the segment up, its next owner trims it
                try:
                    self._release_segment()
                except OSError:
                    self._wfile, self._wseg = None, None
        self._pending = {}

    def _release_segment(self) -> None:
        if self._wfile is not None:
            self._wfile.close()  # closing releases the flock
        self._wfile, self._wseg, self._pending = None, None, {}

    def close(self) -> None:
        self._release_segment()
        with self._fd_lock:
            for fd in [*self._fds.values(), *self._retired]:
                os.close(fd)
            self._fds.clear()
            self._retired.clear()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
