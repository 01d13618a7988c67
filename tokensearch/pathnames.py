"""File names that are not UTF-8: kept losslessly in the database, shown readably everywhere else.

On POSIX a file name is bytes. Python decodes it with ``surrogateescape``, so the Latin-1 name
``caf\\xe9.png`` becomes the str ``'caf\\udce9.png'``: it opens the file again, but it cannot be encoded as
UTF-8, which SQLite, PostgreSQL and JSON all require.

- In the database (:func:`to_db` / :func:`from_db`): a name that is valid UTF-8 is stored as it is (so
  every index written before keeps its rows); any other is stored as a ``file://`` URI of its bytes,
  percent-encoded (``file:///docs/caf%E9.png``). ``pathlib`` never writes ``//`` after a path's first
  character, so no real path reads as such a URI; a string that does start with ``file://`` is encoded
  too, which keeps the mapping one-to-one whatever the caller passes.
- On screen and in JSON (:func:`shown`): undecodable bytes as ``\\xNN`` escapes (``caf\\xe9.png``), the way
  ``ls -b`` and Python's ``backslashreplace`` show them.
"""

from __future__ import annotations

import os
from urllib.parse import quote_from_bytes, unquote_to_bytes

URI = "file://"


def _name_bytes(name: str) -> bytes:
    try:
        return os.fsencode(name)
    except UnicodeEncodeError:  # a lone surrogate no file system decoding makes: no file has this name
        return name.encode("utf-8", "surrogatepass")


def is_utf8(name: str) -> bool:
    """Whether ``name`` can be written as UTF-8 as it is (no escaped bytes in it)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_db(name: str) -> str:
    """The form a file name is stored in: itself if valid UTF-8, else a ``file://`` URI of its bytes."""
    if is_utf8(name) and not name.startswith(URI):
        return name
    return URI + quote_from_bytes(_name_bytes(name), safe="/")


def from_db(text: str) -> str:
    """Inverse of :func:`to_db`: the name as Python's file functions take it."""
    if text.startswith(URI):
        return os.fsdecode(unquote_to_bytes(text[len(URI) :]))
    return text


def shown(text: str) -> str:
    """``text`` as valid UTF-8 for people and JSON: bytes that are not UTF-8 become ``\\xNN`` escapes."""
    if is_utf8(text):
        return text
    return _name_bytes(text).decode("utf-8", "backslashreplace")
