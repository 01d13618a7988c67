"""What a search may return: a typed filter on the documents (path, type, modified date, id).

One :class:`SearchFilter` travels from the CLI flags or the API's query parameters through the engine and
the searcher to the store, which resolves it to the allowed pages once per query (SQL, plus the path glob
in Python; ``Store.filter_pages``). The searcher restricts its candidate search to those pages, so a filtered
query still returns k hits when k exist.

Path globs (``--path``, ``path=``) are matched against a document's path relative to a folder it was indexed
or watched from (the roots ``ts_runs`` records), or against its absolute path when the glob is absolute:

- ``*`` and ``?`` stay within one folder name, ``**`` spans folders, ``[abc]`` is a class;
- a glob without ``/`` is matched against the file name at any depth (``*.pdf``), as in ``.gitignore``;
- a glob naming a folder also matches everything below it (``invoices/2024`` = ``invoices/2024/**``).

Dates are ISO 8601 (``2024-05-01`` or ``2024-05-01T12:00:00+02:00``; UTC when no offset is given):
``modified_after`` keeps files modified at or after it, ``modified_before`` files modified before it, so
``--modified-after 2024-01-01 --modified-before 2024-02-01`` is January.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import cached_property
from typing import Literal

from .errors import QueryError

DocType = Literal["pdf", "image"]
DOC_TYPES: tuple[str, ...] = ("pdf", "image")


def parse_when(text: str, name: str) -> datetime:
    """An ISO 8601 date or date-time as an aware datetime (UTC when it has no offset)."""
    raw = text.strip()
    try:
        when = (
            datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if "T" in raw or " " in raw
            else datetime.combine(date.fromisoformat(raw), datetime.min.time())
        )
    except ValueError:
        raise QueryError(
            f"{name}: {text!r} is not a date; write it as 2024-05-31 or 2024-05-31T18:00:00+02:00"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def iso_utc(mtime_ns: int | None) -> str | None:
    """A file's modification time as ISO 8601 in UTC, to the second (what hits carry)."""
    if mtime_ns is None:
        return None
    return datetime.fromtimestamp(mtime_ns / 1e9, timezone.utc).isoformat(timespec="seconds")


def _glob_pieces(glob: str) -> Iterator[tuple[str, str]]:
    """The glob's pieces in order (see the module's rules): ``("**/", "")``, ``("**", "")``, ``("*", "")``,
    ``("?", "")``, a class ``("[", body)`` (``body`` starts with ``!`` when negated), a literal ``("", c)``."""
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**", i):
            star = "**/" if glob.startswith("**/", i) else "**"
            yield star, ""
            i += len(star)
            continue
        if c == "[":
            end = glob.find("]", i + 2 if glob[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end >= 0:
                yield "[", glob[i + 1 : end]
                i = end + 1
                continue
        if c in "*?":
            yield c, ""
        else:
            yield "", c
        i += 1


def _glob_regex(glob: str) -> str:
    """A path glob as a regular expression over '/'-separated paths (see the module's rules)."""
    out = []
    for kind, text in _glob_pieces(glob):
        if kind == "[":
            neg = text.startswith("!")
            body = text[1:] if neg else text
            out.append("[" + ("^/" if neg else "") + body.replace("\\", "\\\\").replace("[", "\\[") + "]")
        else:
            out.append({"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]", "": re.escape(text)}[kind])
    return "".join(out)


def _glob_like(glob: str) -> str:
    """A SQL LIKE pattern (escape ``\\``) matching every path the glob matches, and maybe more: ``*``, ``**``
    and ``**/`` become ``%``, ``?`` and a class ``_``."""
    like = {"**/": "%", "**": "%", "*": "%", "?": "_", "[": "_"}
    return "".join(like[kind] if kind else _like_escape(text) for kind, text in _glob_pieces(glob))


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class PathGlob:
    """A compiled path glob: :meth:`matches` takes a document's absolute path and the roots it lies under."""

    glob: str

    @cached_property
    def absolute(self) -> bool:
        return self.glob.startswith("/")

    def compile(self) -> re.Pattern[str]:
        return self._regex

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        glob = self.glob.rstrip("/") or "/"
        body = _glob_regex(glob)
        if not self.absolute and "/" not in glob:
            body = "(?:.*/)?" + body  # a name: at any depth
        return re.compile(body + "(?:/.*)?", re.DOTALL)

    def literal_prefix(self) -> str:
        """The part of an absolute glob before its first wildcard."""
        if not self.absolute:
            return ""
        return re.split(r"[*?\[]", self.glob, maxsplit=1)[0]

    def like_patterns(self, roots: list[str], max_roots: int = 64) -> list[str] | None:
        """SQL LIKE patterns (escape ``\\``) of absolute paths: a path the glob matches under ``roots``
        matches one of them (a cheap pre-filter in the database; :meth:`matches` decides). None: too many
        roots to list."""
        glob = self.glob.rstrip("/") or "/"
        body = _glob_like(glob)
        if self.absolute:
            bases = [body]
        elif "/" not in glob:
            bases = ["%/" + body]  # a name at any depth
        elif len(roots) > max_roots:
            return None
        else:
            bases = [_like_escape(r.rstrip("/")) + "/" + body for r in roots]
            return [p for b in bases for p in (b, b + "/%")] + [_like_escape(r) for r in roots]  # + file roots
        return [p for b in bases for p in (b, b + "/%")]

    def matches(self, path: str, roots: list[str]) -> bool:
        if self.absolute:
            return self._regex.fullmatch(path) is not None
        for root in roots:
            if path == root:  # a file indexed by itself: its name
                rel = path.rsplit("/", 1)[-1]
            elif path.startswith(root.rstrip("/") + "/"):
                rel = path[len(root.rstrip("/")) + 1 :]
            else:
                continue
            if self._regex.fullmatch(rel) is not None:
                return True
        return False


@dataclass(frozen=True)
class SearchFilter:
    """Which documents a search may return; every field that is set must hold (empty: everything)."""

    path: str | None = None  # glob, see the module
    type: DocType | None = None  # "pdf" | "image"
    modified_after: datetime | None = None  # aware; the file's mtime >= it
    modified_before: datetime | None = None  # aware; the file's mtime < it
    doc: int | None = None  # document id
    _glob: PathGlob | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.type is not None and self.type not in DOC_TYPES:
            raise QueryError(f"type must be one of {', '.join(DOC_TYPES)}, not {self.type!r}")
        if self.path is not None and not self.path.strip():
            raise QueryError("path: the glob is empty")
        for name in ("modified_after", "modified_before"):
            when = getattr(self, name)
            if when is not None and when.tzinfo is None:
                object.__setattr__(self, name, when.replace(tzinfo=timezone.utc))
        if self.doc is not None and self.doc < 1:
            raise QueryError(f"doc must be a document id (>= 1), not {self.doc}")
        glob = PathGlob(self.path) if self.path else None
        if glob is not None:
            try:
                glob.compile()
            except re.error as e:
                raise QueryError(
                    f"path: {self.path!r} is not a glob this search reads ({e}); "
                    "a class like [a-z] needs its range in order"
                ) from None
        object.__setattr__(self, "_glob", glob)

    @classmethod
    def of(
        cls,
        path: str | None = None,
        type: str | None = None,
        modified_after: str | None = None,
        modified_before: str | None = None,
        doc: int | None = None,
    ) -> SearchFilter:
        """A filter from text as users type it (CLI flags, query parameters); blank values are unset."""

        def given(v: str | None) -> str | None:
            return v if v is not None and v.strip() else None

        def when(v: str | None, name: str) -> datetime | None:
            return parse_when(v, name) if v is not None and v.strip() else None

        return cls(
            path=given(path),
            type=given(type),  # type: ignore[arg-type]
            modified_after=when(modified_after, "modified_after"),
            modified_before=when(modified_before, "modified_before"),
            doc=doc,
        )

    @property
    def glob(self) -> PathGlob | None:
        return self._glob

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.path, self.type, self.modified_after, self.modified_before, self.doc))

    def params(self) -> dict[str, str]:
        """The API's query parameters for this filter (what a CLI search sends a running server)."""
        out = {
            "path": self.path,
            "type": self.type,
            "doc": None if self.doc is None else str(self.doc),
            "modified_after": self.modified_after.isoformat() if self.modified_after else None,
            "modified_before": self.modified_before.isoformat() if self.modified_before else None,
        }
        return {k: v for k, v in out.items() if v is not None}


NO_FILTER = SearchFilter()
