"""Replay phantoms for fine-tuning: fresh scans of the model's own family mixed in so that it does not forget.

Each phantom is a pure function of its seed, size and the generator's code, so it is generated once and kept
in a cache folder: a second fine-tuning reads it back in a fraction of a second instead of drawing it again
(about 1.5 s a crop). The cache key holds a digest of the generator's source, so a changed generator never
serves old phantoms. A cache that cannot be written is not an error: the phantoms then go to the run's own
temporary folder.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from pathlib import Path

from TeethSegmentationLib.events import Reporter

CACHE_ENV = "TEETHSEG_CACHE_DIR"
REPLAY_SEED = 900_000  # phantom seeds far from the default model's training (100+) and validation (10000+)


def default_cache_dir() -> Path:
    """``$TEETHSEG_CACHE_DIR``, else the platform's per-user cache folder + ``teethseg``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "teethseg"


@functools.cache
def generator_digest() -> str:
    """12 hex digits of the phantom generator's source: part of every cached phantom's name."""
    folder = Path(__file__).resolve().parent.parent / "phantom"
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def replay_phantoms(
    count: int, seed: int, size: str, work: Path, cache: Path | None, reporter: Reporter
) -> tuple[list[str], list[str]]:
    """(image paths, label paths) of ``count`` crop phantoms of seeds ``REPLAY_SEED + 1000 * seed + i``,
    read from ``cache`` where they are already there, else generated (into ``cache``, or ``work`` when the
    cache is None or cannot be written)."""
    images, labels = [], []
    for i in range(count):
        reporter.progress("replay phantoms", i / count, f"phantom {i + 1} of {count}")
        image, label = _phantom(REPLAY_SEED + 1000 * seed + i, size, work, cache)
        images.append(str(image))
        labels.append(str(label))
    reporter.progress("replay phantoms", 1.0, f"{count} phantoms")
    return images, labels


def _phantom(seed: int, size: str, work: Path, cache: Path | None) -> tuple[Path, Path]:
    stem = f"replay-{generator_digest()}-{size}-{seed}"
    if cache is not None:
        image, label = cache / f"{stem}.nrrd", cache / f"{stem}.labels.nrrd"
        if image.is_file() and label.is_file():
            return image, label
        try:
            return _generate(seed, size, image, label)
        except OSError:
            pass  # a read-only or full cache folder: this run keeps its phantoms to itself
    return _generate(seed, size, work / f"{stem}.nrrd", work / f"{stem}.labels.nrrd")


def _generate(seed: int, size: str, image: Path, label: Path) -> tuple[Path, Path]:
    from TeethSegmentationLib.phantom import make_phantom

    return make_phantom(seed, size=size, fov="crop").write(image, label)  # a pair is whole or regenerated
