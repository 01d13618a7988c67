"""A running ``tokensearch serve`` notes itself in its home, so a CLI search there can ask it.

A CLI search that opens the index itself pays for Python's imports (SQLAlchemy, pydantic, NumPy, FAISS)
and for loading the vector index, every time: about half a second on the README's sample, seconds on
a large index. The server has all of that loaded. ``serve`` writes ``<home>/server.json`` (its pid,
URL and what it was started with) and removes it when it stops; ``tokensearch search`` reads it and,
when the server is alive and was started on the same index and model, sends the query there and says
so on stderr. Anything else — no note, a dead pid (a killed server leaves its note behind), a refused
connection, a 401 because the server wants a key the CLI was not given, a timeout — and the CLI
searches in-process as before: the note only ever makes a search faster, never different.

Only the standard library is imported here: this is the CLI's path before it decides to load anything.
"""

from __future__ import annotations

import http.client
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ENV_PREFIX = "TOKENSEARCH_"
DEFAULT_HOME = Path(".tokensearch")
NOTE_NAME = "server.json"
TIMEOUT_S = 30.0  # a search the server accepted: a busy server is still faster than loading the index


@dataclass(frozen=True)
class ServerNote:
    pid: int
    url: str  # http://host:port as a client on this machine reaches it
    database_url: str | None  # as the server was given it (None: the home's SQLite file)
    model: str  # the model spec the server searches with


def home_of(flag: Path | None) -> Path:
    """The home a command works on: its ``--home`` flag, else ``TOKENSEARCH_HOME``, else the default (the
    same order as :class:`~tokensearch.settings.Settings`, without importing it)."""
    if flag is not None:
        return flag
    env = os.environ.get(ENV_PREFIX + "HOME")
    return Path(env) if env else DEFAULT_HOME


def announce(home: Path, note: ServerNote) -> None:
    """Write the note atomically (a reader sees the old note or the new one, never half of one)."""
    home.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".server-", dir=home)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(note), f)
        os.replace(tmp, home / NOTE_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def withdraw(home: Path, pid: int) -> None:
    """Remove the note if it is still this server's (a second server on the same home may have replaced it)."""
    note = read_note(home)
    if note is not None and note.pid == pid:
        (home / NOTE_NAME).unlink(missing_ok=True)


def read_note(home: Path) -> ServerNote | None:
    try:
        data = json.loads((home / NOTE_NAME).read_text())
        return ServerNote(int(data["pid"]), str(data["url"]), data.get("database_url"), str(data["model"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def running_server(home: Path, database_url: str | None, model: str | None) -> ServerNote | None:
    """The server noted in ``home`` if it is alive and searches what this command would search."""
    note = read_note(home)
    if note is None or not _alive(note.pid):
        return None
    if database_url is not None and database_url != note.database_url:
        return None
    if model is not None and model != note.model:
        return None
    return note


def search(
    note: ServerNote, query: str, k: int, offset: int, api_key: str | None, filters: dict[str, str] | None = None
) -> dict | None:
    """The server's ``GET /api/v1/search`` answer, or None where it gave none (the caller then searches
    in-process, which also reports a bad query the way the CLI always has). ``filters``: the search
    filter's query parameters (``SearchFilter.params``)."""
    parts = urlsplit(note.url)
    if parts.scheme != "http" or not parts.hostname:
        return None
    headers = {"Accept": "application/json"}
    if api_key:
        headers["X-API-Key"] = api_key
    path = "/api/v1/search?" + urlencode({"q": query, "k": k, "offset": offset, **(filters or {})})
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=TIMEOUT_S)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    if resp.status != 200:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("hits"), list) else None
