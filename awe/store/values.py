"""Large values in a file of their own beside the database: ``<db>-values``.

SQLite writes a value of a megabyte as 245 pages of 4 KiB, each with its own write
into the write-ahead log, then reads them all back and writes them again when it
checkpoints: about 4.5 ms of CPU per MB, where one ``write`` of the same bytes takes
0.3 ms. A run whose state carries a large document paid that on the coordinator's
one process: about half of what a 1 MB run cost it more than a small run. So a
JSON text of at least :data:`LARGE_CHARACTERS` is appended to this file instead,
and the database row holds a *reference* to it: a small BLOB (offset, length and
CRC-32 of the bytes), told apart from the JSON TEXT that every other row holds by
its type alone. This is what RocksDB's BlobDB and WiscKey do for the same reason.

Order is what keeps it durable. A commit's values are written and ``fdatasync``-ed
before the transaction that refers to them begins (:meth:`ValueFile.flush`, on the
writer's thread), whatever the ``--durability``: a reference in the database always
points at bytes on the disk, so the database file stays what SQLite promises it is,
and the values file never needs replaying. A crash between the two leaves bytes that
nothing refers to at the file's end; the next value is written after them.

The file only grows, as the database does: awe deletes no run. Back it up with the
database: ``awe backup`` (:mod:`awe.store.backup`) copies the database, then this file,
which being append-only then holds every value the copied database refers to.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib

LARGE_CHARACTERS = 64 * 1024
"""JSON texts this long or longer go to the values file: where a write and its sync take as long as
SQLite's 16 pages and their checkpoint (measured in bench/README.md, "The fifth pass"); below it,
SQLite is the cheaper."""

_REFERENCE = struct.Struct("<4sQII")
_MAGIC = b"awev"


def values_path(db: str) -> str:
    """Where the values file of the database at ``db`` is."""
    return f"{db}-values"


class ValueFileError(Exception):
    """A reference that does not match the bytes the values file holds (a lost or damaged file)."""


class Reference:
    """A large value as its row holds it: bound by ``sqlite3`` as the BLOB that :meth:`ValueFile.flush` made.

    The row is built on the event loop; encoding the text, checksumming it and writing it
    (about 1 ms per MB) happen on the writer's thread, where ``flush`` fills :attr:`blob` in.
    """

    __slots__ = ("blob", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.blob: bytes | None = None

    def __conform__(self, protocol: object) -> bytes:
        if self.blob is None:
            raise ValueFileError("a large value was bound before the values file wrote it (flush first)")
        return self.blob


class ValueFile:
    """The values file of one database: references handed out on the event loop, bytes written by the writer.

    :meth:`stored` is called while a commit's rows are built: it returns a :class:`Reference`
    at once. :meth:`flush` writes what was referred to and syncs it; the store calls it on the
    writer's thread, just before the transaction, so the event loop neither writes a megabyte
    nor waits for the disk.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._end = 0
        self._pending: list[Reference] = []
        self._opening = threading.Lock()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def stored(self, text: str) -> str | Reference:
        """``text`` itself when it is small; else a reference to it, to be written by :meth:`flush`."""
        if len(text) < LARGE_CHARACTERS:
            return text
        reference = Reference(text)
        self._pending.append(reference)
        return reference

    @property
    def unflushed(self) -> bool:
        """Whether references were handed out whose bytes are not yet on the disk."""
        return bool(self._pending)

    def flush(self) -> None:
        """Write and sync every value referred to since the last flush (before the commit that refers to them).

        A failure (a full disk) forgets nothing: the commit fails too, and is tried again, which
        builds its rows, and so its references, anew. Values written before the failure stay,
        referred to by nothing; a value cut short by it is written over by the next.
        """
        if not self._pending:
            return
        fd = self._open()
        pending, self._pending = self._pending, []
        for reference in pending:
            data = reference.text.encode()  # the store's JSON is valid UTF-8 (orjson's, or ASCII)
            offset = self._end
            written = 0
            while written < len(data):
                written += os.pwrite(fd, memoryview(data)[written:], offset + written)
            self._end = offset + len(data)  # after a failure, the next value is written over what this one left
            reference.blob = _REFERENCE.pack(_MAGIC, offset, len(data), zlib.crc32(data))
        os.fdatasync(fd)

    def text(self, reference: bytes) -> str:
        """The JSON text a reference stands for; :class:`ValueFileError` when the file does not hold it."""
        try:
            magic, offset, length, crc = _REFERENCE.unpack(reference)
        except struct.error:
            magic = b""
        if magic != _MAGIC:
            raise ValueFileError(f"{reference!r} in {self.path}'s database is not a reference to a stored value")
        try:
            data = os.pread(self._open(create=False), length, offset)
        except OSError as exc:
            raise ValueFileError(f"{self.path} cannot be read ({exc}): restore it with the database") from exc
        if len(data) != length or zlib.crc32(data) != crc:
            raise ValueFileError(
                f"{self.path} does not hold the {length} bytes at offset {offset} that the database refers to"
                " (the file was lost, truncated or damaged): restore it from the backup made with the database"
            )
        return data.decode()

    def _open(self, *, create: bool = True) -> int:
        """The file, opened (and created, with its folder entry synced) the first time it is needed.

        A read on the event loop and the writer's first flush may both get here first: hence the lock.
        """
        with self._opening:
            if self._fd is None:
                created = not os.path.exists(self.path)
                self._fd = os.open(self.path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
                self._end = os.fstat(self._fd).st_size
                if created:
                    sync_path(os.path.dirname(os.path.abspath(self.path)))
            return self._fd


def sync_path(path: str | os.PathLike[str]) -> None:
    """Make a file's bytes durable, or a folder's entries (a new file's name: syncing the file alone does not)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
