"""A compressed integer NRRD (a label map) written without reordering or deflating its zeros.

A head's label map is 159 M voxels, nine tenths of them background. pynrrd reorders all of it to NRRD's
Fortran byte order and deflates every byte (0.5 s of a head's run, 0.9 s beside the STL thread). Here only
the labels' box is reordered, slab by slab, and every megabyte of zeros is one deflate segment, compressed
once and repeated: after a full flush deflate refers to nothing before it, so such segments splice into one
valid stream. The file is a plain gzip member (RFC 1952): every NRRD reader reads the same voxels.
"""

from __future__ import annotations

import functools
import struct
import zlib
from pathlib import Path
from typing import IO, Any

import nrrd
import numpy as np

from TeethSegmentationLib.io.volume import bounding_box

ZERO_SEGMENT = 1 << 20  # bytes of zeros per repeated deflate segment
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no time, unknown OS
_TYPES = {"i1": "int8", "u1": "uint8", "i2": "int16", "u2": "uint16", "i4": "int32", "u4": "uint32",
          "i8": "int64", "u8": "uint64"}


def can_write(array: np.ndarray) -> bool:
    """Whether ``array`` is what this writer takes: a 3D array of integers."""
    return array.ndim == 3 and array.dtype.kind in "iu"


def write_labels_nrrd(path: str | Path, array: np.ndarray, header: dict[str, Any], level: int = 1) -> None:
    """``array`` (indexed [i, j, k]) as a gzip-encoded NRRD with ``header``'s space fields (``nrrd_file.nrrd_header``:
    space, space directions, kinds, space origin); type, dimension, sizes, endian and encoding come from here."""
    with open(path, "wb") as fh:
        fh.write(header_text(array, header).encode("ascii"))
        write_fortran_gzip(fh, array, level)


def header_text(array: np.ndarray, header: dict[str, Any]) -> str:
    """The header in pynrrd's field order and number format."""
    lines = ["NRRD0005", "# Complete NRRD file format specification at:", "# http://teem.sourceforge.net/nrrd/format.html",
             f"type: {_TYPES[array.dtype.str[1:]]}", "dimension: 3", f"space: {header['space']}",
             f"sizes: {nrrd.format_number_list(list(array.shape))}",
             f"space directions: {nrrd.format_optional_matrix(np.asarray(header['space directions']))}",
             f"kinds: {' '.join(header['kinds'])}"]
    if array.dtype.itemsize > 1:
        lines.append("endian: little")
    lines += ["encoding: gzip", f"space origin: {nrrd.format_vector(np.asarray(header['space origin']))}"]
    return "\n".join(lines) + "\n\n"


def write_fortran_gzip(fh: IO[bytes], array: np.ndarray, level: int = 1) -> None:
    """``array``'s bytes in Fortran order (little-endian) as one gzip member: the slabs along its last axis in
    turn, within a slab only the rows through the labels' box reordered."""
    stream = _Deflate(fh, level)
    nx, ny, nz = array.shape
    item = array.dtype.itemsize
    box = bounding_box(array)
    if box is None:
        stream.zeros(array.size * item)
    else:
        (i0, j0, k0), (i1, j1, k1) = (tuple(int(v) for v in corner) for corner in box)
        rows = np.zeros((j1 - j0, nx), dtype=array.dtype.newbyteorder("<"))
        stream.zeros(nx * ny * k0 * item)
        for k in range(k0, k1):
            rows[:, i0:i1] = array[i0:i1, j0:j1, k].T
            stream.zeros(nx * j0 * item)
            stream.data(rows.tobytes())
            stream.zeros(nx * (ny - j1) * item)
        stream.zeros(nx * ny * (nz - k1) * item)
    stream.close()


class _Deflate:
    """One gzip member written as data and runs of zeros come; whole megabytes of zeros as the repeated
    segment, everything else through one compressor."""

    def __init__(self, fh: IO[bytes], level: int) -> None:
        self.fh, self.level, self.crc, self.size, self.pending = fh, level, 0, 0, 0
        self.compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        fh.write(_GZIP_HEADER)

    def zeros(self, count: int) -> None:
        self.pending += count

    def data(self, chunk: bytes) -> None:
        self._write_zeros()
        self._compress(chunk)

    def close(self) -> None:
        self._write_zeros()
        self.fh.write(self.compressor.flush())
        self.fh.write(struct.pack("<II", self.crc, self.size & 0xFFFFFFFF))

    def _compress(self, chunk: bytes) -> None:
        self.fh.write(self.compressor.compress(chunk))
        self.crc = zlib.crc32(chunk, self.crc)
        self.size += len(chunk)

    def _write_zeros(self) -> None:
        length = ZERO_SEGMENT
        whole, rest = divmod(self.pending, length)
        self.pending = 0
        if whole:
            self.fh.write(self.compressor.flush(zlib.Z_FULL_FLUSH))  # nothing after this refers back
            segment, zero = _zero_segment(self.level, length), _zero_bytes(length)
            for _ in range(whole):
                self.fh.write(segment)
                self.crc = zlib.crc32(zero, self.crc)
            self.size += whole * length
        if rest:
            self._compress(_zero_bytes(length)[:rest])


@functools.cache
def _zero_bytes(length: int) -> bytes:
    return bytes(length)


@functools.cache
def _zero_segment(level: int, length: int) -> bytes:
    """``length`` zeros as deflate blocks that end on a full flush (no final block, no history after)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(_zero_bytes(length)) + compressor.flush(zlib.Z_FULL_FLUSH)
