"""Reading a scan for ``segment``, with its progress events and seconds; imports no torch, so that the command
can read the first scan while torch and the model load in a worker thread (zlib lets go of the GIL)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from TeethSegmentationLib.events import Reporter
from TeethSegmentationLib.io.read_write import read_volume
from TeethSegmentationLib.io.volume import Volume


@dataclass
class ReadScan:
    source: Path
    volume: Volume
    seconds: float


def read_scan(path: str | os.PathLike, series_uid: str | None, reporter: Reporter) -> ReadScan:
    source = Path(path)
    start = time.perf_counter()
    reporter.progress("read", 0.0, f"reading {source.name}")
    volume = read_volume(source, series_uid)
    seconds = round(time.perf_counter() - start, 3)
    reporter.progress("read", 1.0, f"{volume.shape} voxels of {np.round(volume.spacing, 3).tolist()} mm")
    return ReadScan(source, volume, seconds)
