"""A stable, normalised copy of a source file, so that a load reads the same bytes in every pass.

The ingest engine streams a file through SQL more than once (check, then commit). A file that
grows in between (a log still being written) would be counted in one pass and stored in another,
so the copy is taken once, up to the size the file had when the load began. The copy is also the
one place where text is brought to what the readers expect: gzip is decompressed, UTF-16 (with a
byte-order mark, or recognised by its zero bytes) becomes UTF-8, a UTF-8 byte-order mark is
dropped, and CRLF line ends become LF (DuckDB's CSV reader refuses a file that mixes them).
"""

from __future__ import annotations

import codecs
import gzip
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from cartlift.errors import DataError

__all__ = ["check_readable", "snapshot"]

_CHUNK = 1 << 22
_BINARY = (".parquet", ".xlsx", ".xlsm")
_BOMS = {codecs.BOM_UTF16_LE: "utf-16-le", codecs.BOM_UTF16_BE: "utf-16-be"}


@contextmanager
def snapshot(path: Path) -> Iterator[Path]:
    """Yield a private copy of ``path`` as it was when called, normalised for the readers.

    Raises
    ------
    DataError
        When ``path`` is missing, is a folder, cannot be read, or is text in an encoding that
        cannot be decoded (one line, naming the file and what to do).
    """
    check_readable(path)
    inner = path.with_suffix("") if path.suffix.lower() == ".gz" else path
    folder = tempfile.mkdtemp(prefix="cartlift-load-")
    copy = Path(folder) / inner.name
    try:
        try:
            size = path.stat().st_size
            with path.open("rb") as src, copy.open("wb") as dst:
                if path.suffix.lower() == ".gz" or src.read(2) == b"\x1f\x8b":
                    src.seek(0)
                    _copy_text(gzip.GzipFile(fileobj=src), dst, limit=None)
                elif inner.suffix.lower() in _BINARY:
                    src.seek(0)
                    _copy_binary(src, dst, size)
                else:
                    src.seek(0)
                    _copy_text(src, dst, limit=size)
            if path.stat().st_size != size:
                _cut_partial_line(copy)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise DataError(f"Cannot read {str(path)!r}: {e}.") from e
        except UnicodeDecodeError as e:
            raise DataError(
                f"{str(path)!r} is not valid {e.encoding} text (byte {e.start}); save it as UTF-8 and load it again."
            ) from e
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_readable(path: Path) -> None:
    """Raise a one-line `DataError` unless ``path`` is an existing file (not a folder)."""
    if not path.exists():
        raise DataError(f"No such file: {str(path)!r}.")
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a folder; give one file (CSV/TSV, xlsx, Parquet or JSON lines).")


def _copy_binary(src: IO[bytes], dst: IO[bytes], size: int) -> None:
    left = size
    while left > 0 and (chunk := src.read(min(_CHUNK, left))):
        dst.write(chunk)
        left -= len(chunk)


def _copy_text(src: IO[bytes] | gzip.GzipFile, dst: IO[bytes], *, limit: int | None) -> None:
    """Copy at most ``limit`` bytes of text as UTF-8 with LF line ends."""
    left = limit if limit is not None else -1

    def read() -> bytes:
        nonlocal left
        if left == 0:
            return b""
        chunk = src.read(_CHUNK if left < 0 else min(_CHUNK, left))
        left -= len(chunk) if left > 0 else 0
        return chunk

    first = read()
    encoding = _encoding(first)
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict") if encoding else None
    if encoding is None and first.startswith(codecs.BOM_UTF8):
        first = first[len(codecs.BOM_UTF8) :]
    carry = b""  # a CR at a chunk's end may be half of a CRLF
    chunk = first
    while chunk:
        data = decoder.decode(chunk).encode("utf-8") if decoder else chunk
        data = (carry + data).replace(b"\r\n", b"\n")
        carry = b"\r" if data.endswith(b"\r") else b""
        dst.write(data[: len(data) - len(carry)])
        chunk = read()
    if decoder:
        carry += decoder.decode(b"", final=True).encode("utf-8")
    dst.write(carry)


def _encoding(head: bytes) -> str | None:
    """UTF-16 by its byte-order mark or its zero bytes; ``None`` for UTF-8 (read as it is)."""
    for bom in _BOMS:
        if head.startswith(bom):
            return "utf-16"  # the codec reads and drops the mark
    sample = head[:4096]
    if len(sample) >= 4 and sample[1::2].count(0) > 0.4 * len(sample) / 2 and sample[0::2].count(0) == 0:
        return "utf-16-le"
    if len(sample) >= 4 and sample[0::2].count(0) > 0.4 * len(sample) / 2 and sample[1::2].count(0) == 0:
        return "utf-16-be"
    return None


def _cut_partial_line(copy: Path) -> None:
    """The file grew while it was copied: drop a last line that was still being written."""
    with copy.open("rb+") as f:
        end = f.seek(0, os.SEEK_END)
        back = min(end, _CHUNK)
        f.seek(end - back)
        tail = f.read(back)
        if tail.endswith(b"\n") or b"\n" not in tail:
            return
        f.truncate(end - back + tail.rindex(b"\n") + 1)
