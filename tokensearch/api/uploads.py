"""Uploads: a multipart body streamed straight to disk under a byte limit, then typed by magic bytes.

Nothing is buffered in memory and nothing is trusted from the client: the size limit is checked against
``Content-Length`` before reading and again on every chunk; the file type comes from the first bytes of the
content, never from the name or the declared content type; the stored name is sanitised.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import anyio
from python_multipart.multipart import MultipartParser, parse_options_header

from .errors import ApiError

if TYPE_CHECKING:  # a name python_multipart defines for type checkers only
    from python_multipart.multipart import MultipartCallbacks

# magic bytes -> (extension, media type); the engine's supported formats
MAGIC: list[tuple[bytes, int, str, str]] = [  # (signature, offset, extension, media type)
    (b"%PDF-", 0, ".pdf", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", 0, ".png", "image/png"),
    (b"\xff\xd8\xff", 0, ".jpg", "image/jpeg"),
    (b"II*\x00", 0, ".tif", "image/tiff"),
    (b"MM\x00*", 0, ".tif", "image/tiff"),
    (b"WEBP", 8, ".webp", "image/webp"),
    (b"BM", 0, ".bmp", "image/bmp"),
]
MULTIPART_OVERHEAD = 64 * 1024  # headers, boundaries and small fields allowed on top of the file bytes
MAX_FILES = 20


def sniff(head: bytes) -> tuple[str, str] | None:
    """(extension, media type) of a file from its first bytes, or None if it is not a supported type."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp", "image/webp"
    for sig, off, ext, media in MAGIC:
        if sig == b"WEBP":
            continue
        if head[off : off + len(sig)] == sig:
            return ext, media
    if b"%PDF-" in head[:1024]:  # PDF allows junk before the header
        return ".pdf", "application/pdf"
    return None


def safe_filename(name: str, ext: str) -> str:
    """A harmless file name keeping the client's stem: no directories, no dot-files, the sniffed extension."""
    stem = Path(name.replace("\\", "/").split("/")[-1]).stem
    stem = re.sub(r"[^\w.\- ]+", "_", stem, flags=re.UNICODE).strip(" ._")[:100]
    return f"{stem or 'upload'}{ext}"


@dataclass
class ReceivedFile:
    filename: str
    tmp_path: Path
    size: int = 0
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    head: bytes = b""
    handle: BinaryIO | None = None


class _StreamingForm:
    """Callbacks for :class:`MultipartParser` writing file parts to temporary files as they arrive."""

    def __init__(self, tmp_dir: Path, max_bytes: int):
        self.tmp_dir = tmp_dir
        self.max_bytes = max_bytes
        self.files: list[ReceivedFile] = []
        self.total = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._current: ReceivedFile | None = None
        self._field_bytes = 0

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self._disposition = b""
        self._current = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"filename" not in options:
            return  # a plain form field: ignored (bounded by MULTIPART_OVERHEAD)
        if len(self.files) >= MAX_FILES:
            raise ApiError(413, "payload_too_large", f"at most {MAX_FILES} files per upload")
        filename = options[b"filename"].decode("utf-8", "replace")
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, suffix=".part")
        rf = ReceivedFile(filename=filename, tmp_path=Path(tmp), handle=os.fdopen(fd, "wb"))
        self.files.append(rf)
        self._current = rf

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        rf = self._current
        if rf is None:
            self._field_bytes += len(chunk)
            if self._field_bytes > MULTIPART_OVERHEAD:
                raise ApiError(413, "payload_too_large", "form fields too large")
            return
        self.total += len(chunk)
        if self.total > self.max_bytes:
            raise ApiError(
                413,
                "payload_too_large",
                f"upload exceeds the limit of {self.max_bytes} bytes (TOKENSEARCH_MAX_UPLOAD_BYTES)",
            )
        if len(rf.head) < 1024:
            rf.head += chunk[: 1024 - len(rf.head)]
        rf.size += len(chunk)
        rf.sha256.update(chunk)
        assert rf.handle is not None
        rf.handle.write(chunk)

    def on_part_end(self) -> None:
        if self._current is not None and self._current.handle is not None:
            self._current.handle.close()
            self._current.handle = None
        self._current = None

    def cleanup(self) -> None:
        for rf in self.files:
            if rf.handle is not None:
                rf.handle.close()
            rf.tmp_path.unlink(missing_ok=True)


async def receive_files(headers, stream: AsyncIterator[bytes], tmp_dir: Path, max_bytes: int) -> list[ReceivedFile]:
    """Parse a ``multipart/form-data`` body into temporary files (deleted again on any error)."""
    content_type = headers.get("content-type", "")
    media, params = parse_options_header(content_type)
    if media != b"multipart/form-data" or b"boundary" not in params:
        raise ApiError(
            415, "unsupported_media_type", "send the file(s) as multipart/form-data, e.g. curl -F file=@scan.pdf"
        )
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD:
        raise ApiError(413, "payload_too_large", f"upload of {declared} bytes exceeds the limit of {max_bytes} bytes")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    form = _StreamingForm(tmp_dir, max_bytes)
    body = 0
    try:
        parser = MultipartParser(params[b"boundary"], form.callbacks())
        async for chunk in stream:
            body += len(chunk)
            if body > max_bytes + MULTIPART_OVERHEAD:
                raise ApiError(413, "payload_too_large", f"upload exceeds the limit of {max_bytes} bytes")
            if chunk:
                await anyio.to_thread.run_sync(parser.write, chunk)
        parser.finalize()
    except ApiError:
        form.cleanup()
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed body is the client's error
        form.cleanup()
        raise ApiError(400, "bad_request", f"malformed multipart body: {exc}") from None
    for rf in form.files:
        if rf.handle is not None:
            rf.handle.close()
            rf.handle = None
    if not form.files:
        form.cleanup()
        raise ApiError(422, "validation_error", "file: no file part in the upload (curl -F file=@scan.pdf)")
    return form.files


def store_files(received: list[ReceivedFile], uploads: Path) -> list[tuple[ReceivedFile, Path, str]]:
    """Type-check every file by magic bytes, then move it to ``uploads/<sha256[:16]>/<name>``.

    All-or-nothing: if one file is not a supported type, none is kept (415).
    """
    typed = []
    for rf in received:
        kind = sniff(rf.head)
        if kind is None or rf.size == 0:
            for r in received:
                r.tmp_path.unlink(missing_ok=True)
            raise ApiError(
                415,
                "unsupported_media_type",
                f"{rf.filename!r} is not a PDF, PNG, JPEG, TIFF, WebP or BMP file (checked by content)",
            )
        typed.append((rf, kind))
    stored = []
    for rf, (ext, media) in typed:
        folder = uploads / rf.sha256.hexdigest()[:16]
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / safe_filename(rf.filename, ext)
        if target.exists():
            rf.tmp_path.unlink(missing_ok=True)  # same content under the same name: already stored
        else:
            shutil.move(rf.tmp_path, target)
        stored.append((rf, target, media))
    return stored
