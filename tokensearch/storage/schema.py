"""SQL tables of one index (SQLAlchemy 2 typed ORM). Works on any SQLAlchemy URL; tested on SQLite and
PostgreSQL.

Pages are immutable once written: a page row points at its cell features in the feature store
(``segment``, ``offset``, ``nbytes``) and carries the ``generation`` of the transaction that created it.
``meta`` holds the model record, the codec (projection matrix as a blob), the vector-index choice and
the ``generation`` counter, bumped by every transaction that adds or removes pages.

File names go through :class:`FilePath` and messages through :class:`Message`, so a name that is not
UTF-8 is stored losslessly and shown escaped (:mod:`tokensearch.pathnames`); both are plain TEXT columns.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.types import TypeDecorator

from ..pathnames import from_db, shown, to_db

# bump on any change to the tables or the on-disk formats that an older version cannot read or would
# corrupt; a new table it does not know of (ts_warnings) is neither. 2: text-layer pages' palettes name rows of
# ts_text_rows (feature blob flag 16). A home keeps the schema it was created with, and this version writes it
# in that schema's formats: version 1 homes keep a palette in each blob
SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class FilePath(TypeDecorator):
    """A file name: stored as it is when valid UTF-8, else as a ``file://`` URI of its bytes."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:  # noqa: ANN001
        return None if value is None else to_db(value)

    def process_result_value(self, value: str | None, dialect) -> str | None:  # noqa: ANN001
        return None if value is None else from_db(value)


class Message(TypeDecorator):
    """Text for people (a reason, a warning); it may quote a file name that is not UTF-8: escaped."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:  # noqa: ANN001
        return None if value is None else shown(value)


class Base(DeclarativeBase):
    pass


def create_tables(conn: Connection) -> None:
    """Create what is missing, race-free: ``IF NOT EXISTS`` on every table and index, so several processes
    opening a fresh home at once all succeed (``create_all`` checks, then creates: two processes can both
    see a table missing)."""
    for table in Base.metadata.sorted_tables:
        conn.execute(CreateTable(table, if_not_exists=True))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            conn.execute(CreateIndex(index, if_not_exists=True))


class Document(Base):
    """One distinct content (by sha256), indexed successfully; reachable from one or more paths."""

    __tablename__ = "ts_documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # "pdf" | "image"
    status: Mapped[str] = mapped_column(String(16), default="ok")  # "ok" | "partial" (see its warning)
    n_pages: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("ts_runs.id", ondelete="SET NULL"), nullable=True)

    paths: Mapped[list[DocPath]] = relationship(back_populates="document", passive_deletes=True)

    __table_args__ = {"sqlite_autoincrement": True}


class DocPath(Base):
    """A path (as the indexer names it) where a document's content currently is."""

    __tablename__ = "ts_paths"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FilePath, unique=True)
    doc_id: Mapped[int] = mapped_column(ForeignKey("ts_documents.id", ondelete="CASCADE"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    indexed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    document: Mapped[Document] = relationship(back_populates="paths")


class Page(Base):
    __tablename__ = "ts_pages"

    # never reused (sqlite_autoincrement): vector ids are derived from page ids
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    doc_id: Mapped[int] = mapped_column(ForeignKey("ts_documents.id", ondelete="CASCADE"))
    page_no: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    grid_h: Mapped[int] = mapped_column(Integer)
    grid_w: Mapped[int] = mapped_column(Integer)
    n_cells: Mapped[int] = mapped_column(Integer)  # kept cells in the feature store
    n_vectors: Mapped[int] = mapped_column(Integer)  # of which distinct (what the vector index holds)
    segment: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    nbytes: Mapped[int] = mapped_column(Integer)
    generation: Mapped[int] = mapped_column(BigInteger, index=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_ts_pages_doc_page", "doc_id", "page_no", unique=True),
        {"sqlite_autoincrement": True},
    )


class Failure(Base):
    """A path that could not be indexed, and why (kept so unchanged failing files are not retried)."""

    __tablename__ = "ts_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FilePath, unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(Message)
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("ts_runs.id", ondelete="SET NULL"), nullable=True)


class IndexWarning(Base):
    """Something a user should know about an indexed file: about its content (``doc_id``: a damaged PDF
    indexed in part) or about one of its paths (``path``: the extension disagrees with the content)."""

    __tablename__ = "ts_warnings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    doc_id: Mapped[int | None] = mapped_column(
        ForeignKey("ts_documents.id", ondelete="CASCADE"), nullable=True, index=True
    )
    path: Mapped[str | None] = mapped_column(FilePath, nullable=True, index=True)
    message: Mapped[str] = mapped_column(Message)


class IndexRun(Base):
    """One ``index`` pass. ``running`` until it finishes; a run whose process died is marked
    ``interrupted`` by the next process that opens the index (see ``Store``'s run locks)."""

    __tablename__ = "ts_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    root: Mapped[str] = mapped_column(FilePath)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # running | ok | failed | cancelled | interrupted
    status: Mapped[str] = mapped_column(String(16), default="running")
    stats: Mapped[dict] = mapped_column(JSON, default=dict)


class Meta(Base):
    """Key/value records: ``schema`` (number), ``model`` (JSON), ``codec`` (JSON + matrix blob),
    ``vector_index`` (JSON), ``generation`` (number)."""

    __tablename__ = "ts_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    blob: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class TextRow(Base):
    """A text layer's token vector as stored (int8, index space), once a home: a born-digital page's blob
    names its palette by these ids. The same token is the same row on every page, so the table is bounded by
    the vocabulary; rows are never deleted (a removed page's rows serve the next page with those tokens)."""

    __tablename__ = "ts_text_rows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
