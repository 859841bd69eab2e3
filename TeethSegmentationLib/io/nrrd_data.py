"""The voxels of a NRRD file, read with bounded memory from a place the header may point to.

pynrrd reads the whole rest of a file (raw) or inflates every byte of a gzip stream before it
checks the size, and opens any ``data file`` the header names: an absolute path, ``..``, a device or
a FIFO (which blocks forever). Here the header's sizes, checked beforehand against the limits, fix
the buffer; inflation stops at that size; and a detached data file must be a regular file in the
header's folder or below.
"""

from __future__ import annotations

import bz2
import os
import stat
import zlib
from pathlib import Path
from typing import IO, Any

import nrrd
import numpy as np

from TeethSegmentationLib.errors import InputError

_CHUNK = 1 << 22  # compressed bytes read at a time
_COMPRESSED = {"gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2"}
_TEXT = {"ascii", "text", "txt"}


def open_regular_file(path: Path, what: str) -> IO[bytes]:
    """``path`` opened for reading only if it is a regular file (never blocks on a FIFO or a device)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise InputError(f"{what} {path.name} cannot be opened ({e.strerror}); check the path.") from None
    if not stat.S_ISREG(mode):
        raise InputError(f"{what} {path.name} is not a regular file (a device, FIFO or folder); use a volume file.")
    return open(path, "rb")


def detached_data_path(header: dict[str, Any], header_path: Path) -> Path | None:
    """The header's ``data file``, allowed only inside the header's folder (or below); None when attached."""
    name = header.get("data file", header.get("datafile"))
    if name is None:
        return None
    name = str(name)
    if name.upper().startswith("LIST") or "%" in name or " " in name.strip():
        raise InputError(f"{header_path.name} splits its voxels over several data files; save it as one .nrrd file.")
    folder = header_path.resolve().parent
    target = (folder / name).resolve()
    if os.path.isabs(name) or not target.is_relative_to(folder):
        raise InputError(
            f"{header_path.name} points to the data file '{name}' outside its own folder; keep the data file "
            "beside the .nhdr header."
        )
    return target


def read_nrrd_voxels(header: dict[str, Any], fh: IO[bytes], header_path: Path) -> np.ndarray:
    """The voxel array (Fortran index order, like pynrrd) of exactly the header's sizes, or an InputError."""
    dtype = nrrd.reader._determine_datatype(header)
    sizes = np.asarray(header["sizes"], dtype=np.int64)
    count = int(np.prod(sizes, dtype=np.int64))
    data_path = detached_data_path(header, header_path)
    if data_path is None:
        return _read(header, fh, header_path, dtype, count).reshape(tuple(sizes[::-1])).T
    with open_regular_file(data_path, "Data file") as data_fh:
        return _read(header, data_fh, header_path, dtype, count).reshape(tuple(sizes[::-1])).T


def _read(header: dict[str, Any], fh: IO[bytes], path: Path, dtype: np.dtype, count: int) -> np.ndarray:
    for _ in range(int(header.get("line skip", header.get("lineskip", 0)))):
        fh.readline()
    skip = int(header.get("byte skip", header.get("byteskip", 0)))
    encoding = str(header.get("encoding", "raw")).lower()
    if skip < -1:
        raise InputError(f"{path.name} has an invalid byte skip ({skip}); re-export the file.")
    if encoding == "raw":
        return _read_raw(fh, path, dtype, count, skip)
    if encoding in _TEXT:
        data = np.fromfile(fh, dtype, count=count, sep=" ")
        return _exact(data, count, path)
    if encoding not in _COMPRESSED:
        raise InputError(f"{path.name} uses the NRRD encoding '{encoding}', which is not supported; use raw or gzip.")
    if skip == -1:
        raise InputError(f"{path.name} combines byte skip -1 with {encoding} data; re-export the file.")
    return _inflate(fh, path, dtype, count, skip, _COMPRESSED[encoding])


def _read_raw(fh: IO[bytes], path: Path, dtype: np.dtype, count: int, skip: int) -> np.ndarray:
    wanted = count * dtype.itemsize
    if skip == -1:
        fh.seek(-wanted, os.SEEK_END) if os.fstat(fh.fileno()).st_size >= wanted else None
    else:
        fh.seek(skip, os.SEEK_CUR)
    data = np.fromfile(fh, dtype, count=count)
    return _exact(data, count, path)


def _inflate(fh: IO[bytes], path: Path, dtype: np.dtype, count: int, skip: int, kind: str) -> np.ndarray:
    """Decompress into a buffer of exactly the expected size; more data than the sizes say is an error."""
    out = np.empty(count * dtype.itemsize + skip, dtype=np.uint8)
    engine: Any = zlib.decompressobj(zlib.MAX_WBITS | 32) if kind == "gzip" else bz2.BZ2Decompressor()
    filled = 0
    try:
        while not engine.eof:
            pending = _next_input(engine, fh, kind)
            if pending is None:
                break
            piece = engine.decompress(pending, len(out) - filled + 1)
            if filled + len(piece) > len(out):
                raise InputError(
                    f"{path.name} holds more voxel data than its header's sizes say; the file is damaged."
                )
            out[filled : filled + len(piece)] = np.frombuffer(piece, np.uint8)
            filled += len(piece)
    except (zlib.error, OSError, EOFError) as e:
        raise InputError(f"{path.name} has damaged {kind} data ({e}); check that the file is complete.") from None
    if filled < len(out):
        _exact(out[:0], count, path, got=max(0, filled - skip) // dtype.itemsize)
    return out[skip:].view(dtype)


def _next_input(engine: Any, fh: IO[bytes], kind: str) -> bytes | None:
    """What to feed the decompressor next: its own leftover input first; None at the end of the file."""
    if kind == "gzip" and engine.unconsumed_tail:
        return engine.unconsumed_tail
    if kind == "bzip2" and not engine.needs_input:
        return b""
    chunk = fh.read(_CHUNK)
    return chunk or None


def _exact(data: np.ndarray, count: int, path: Path, got: int | None = None) -> np.ndarray:
    got = data.size if got is None else got
    if got != count:
        raise InputError(
            f"{path.name} could not be read as NRRD: it holds {got:,} voxel values where its header's sizes "
            f"need {count:,}; check that the file is complete."
        )
    return data
