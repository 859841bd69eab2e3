"""Atomic outputs: write under a temporary name beside the target, rename when complete.

A killed run leaves no half-written file under the final name (ARCHITECTURE.md, conventions).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; it replaces ``path`` only if the block succeeds.

    The temporary name is hidden and ends with the target's name, so writers that choose the format
    from the extension (``.nii.gz``, ``.nrrd``, ``.stl``) see the right one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".partial-", suffix=f"-{path.name}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600: published files follow the umask
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def current_umask() -> int:
    """The process's umask (reading it means setting it: put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_figure(figure, path: str | os.PathLike) -> Path:  # noqa: ANN001 - a matplotlib Figure, imported lazily
    """A matplotlib figure as PNG, atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(path)
