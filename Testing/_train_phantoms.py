"""Tiny labelled CBCT cases for the training tests: ``phantom.make_phantom(size="tiny")`` written as NRRD."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from TeethSegmentationLib.io.read_write import write_volume
from TeethSegmentationLib.io.volume import Volume
from TeethSegmentationLib.nets.model_file import new_model, save_model
from TeethSegmentationLib.phantom import make_phantom


def tiny_case(seed: int) -> tuple[Volume, Volume]:
    """(image, FDI labels) of a tiny case."""
    case = make_phantom(seed, size="tiny")
    return case.image, case.labels


def write_cases(folder: Path, count: int, seed: int = 0) -> list[tuple[Path, Path]]:
    """caseNN.nrrd + caseNN.labels.nrrd in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(count):
        image, labels = tiny_case(seed + i)
        img_path = write_volume(image, folder / f"case{i:02d}.nrrd")
        lab_path = write_volume(labels, folder / f"case{i:02d}.labels.nrrd")
        pairs.append((img_path, lab_path))
    return pairs


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread: on a busy 2-core machine two threads are many times slower, not faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_parent_model(path: Path, classes: int = 9) -> Path:
    """A small untrained model on the tiny phantoms' coarse grids (fast to segment and to fine-tune); 14
    ``classes``: primary types too, like the shipped model."""
    torch.manual_seed(0)
    model = new_model(spacing_mm=1.0, teeth_spacing_mm=1.5, teeth_arch={"start_filters": 4},
                      types_arch={"start_filters": 4, "out_channels": classes})
    save_model(model, path)
    return path
