"""The user's case library: corrected (volume, segmentation) pairs kept for fine-tuning, and the user's model.

Layout under the root the Slicer module passes (its settings folder)::

    ROOT/cases/<case id>/image.nrrd              the scan, as exported from the scene
    ROOT/cases/<case id>/segmentation.seg.nrrd   the corrected segmentation, exactly as the user left it
    ROOT/cases/<case id>/case.json               {"id", "title", "added"}: title is for the user's own list
    ROOT/models/user-default.pt (+ .card.json)   the fine-tuned model that replaces the shipped one

A case is written into a hidden staging folder and renamed into place when complete; removing renames
it away first. Either way a listing never sees half a case. Qt-free and Slicer-free: ``mrml.py``
exports scene nodes into :meth:`CaseLibrary.adding`, ``teethseg finetune --data ROOT`` reads it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from TeethSegmentationLib.atomic import atomic_path
from TeethSegmentationLib.errors import InputError

IMAGE_NAME = "image.nrrd"
SEGMENTATION_NAME = "segmentation.seg.nrrd"
INFO_NAME = "case.json"
USER_DEFAULT_MODEL = Path("models") / "user-default.pt"


@dataclass(frozen=True)
class LibraryCase:
    case_id: str
    folder: Path
    title: str
    added: str

    @property
    def image(self) -> Path:
        return self.folder / IMAGE_NAME

    @property
    def segmentation(self) -> Path:
        return self.folder / SEGMENTATION_NAME


def new_case_id() -> str:
    """A neutral id that sorts by time to the millisecond (never the patient's or the volume's name): two cases
    added within one second still list in the order they were added, and the newest is the held-back one. Ids
    made within one millisecond by this process take the next millisecond, so they too keep their order."""
    global _last_ms
    with _id_lock:
        ms = _last_ms = max(int(time.time() * 1000), _last_ms + 1)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(ms / 1000))
    return f"case-{stamp}-{ms % 1000:03d}-{uuid.uuid4().hex[:6]}"


_last_ms = 0
_id_lock = threading.Lock()


def is_library(folder: str | os.PathLike) -> bool:
    return (Path(folder) / "cases").is_dir()


class CaseLibrary:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.cases_dir = self.root / "cases"

    def list(self) -> list[LibraryCase]:
        """Complete cases, oldest first."""
        if not self.cases_dir.is_dir():
            return []
        found = []
        for folder in sorted(self.cases_dir.iterdir()):
            if folder.name.startswith(".") or not (folder / INFO_NAME).is_file():
                continue
            try:
                info = json.loads((folder / INFO_NAME).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            found.append(LibraryCase(folder.name, folder, str(info.get("title", "")), str(info.get("added", ""))))
        return sorted(found, key=lambda c: (c.added, c.case_id))

    @contextmanager
    def adding(self, case_id: str, title: str) -> Iterator[Path]:
        """A staging folder to write ``image.nrrd`` and ``segmentation.seg.nrrd`` into; published as case
        ``case_id`` (see :func:`new_case_id`) when the block ends without error, else removed."""
        self.cases_dir.mkdir(parents=True, exist_ok=True)
        added = time.strftime("%Y-%m-%dT%H:%M:%S")
        staging = Path(tempfile.mkdtemp(prefix=f".adding-{case_id}-", dir=self.cases_dir))
        try:
            yield staging
            missing = [n for n in (IMAGE_NAME, SEGMENTATION_NAME) if not (staging / n).is_file()]
            if missing:
                raise InputError(f"The case is incomplete ({', '.join(missing)} missing); nothing was added.")
            info = {"id": case_id, "title": title, "added": added}
            (staging / INFO_NAME).write_text(json.dumps(info, indent=2), encoding="utf-8")
            os.rename(staging, self.cases_dir / case_id)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def add_files(self, image: str | os.PathLike, segmentation: str | os.PathLike, title: str = "") -> LibraryCase:
        """Copy an image (NRRD) and its segmentation (.seg.nrrd or label map NRRD) in as a new case."""
        for path in (image, segmentation):
            if not Path(path).is_file():
                raise InputError(f"{path} does not exist; nothing was added to the case library.")
        case_id = new_case_id()
        with self.adding(case_id, title or Path(image).name) as staging:
            shutil.copyfile(image, staging / IMAGE_NAME)
            shutil.copyfile(segmentation, staging / SEGMENTATION_NAME)
        return self.get(case_id)

    def get(self, case_id: str) -> LibraryCase:
        for case in self.list():
            if case.case_id == case_id:
                return case
        raise InputError(f"The case library has no case {case_id!r}.")

    def remove(self, case_id: str) -> None:
        """Remove a case: renamed out of the listing first, then deleted."""
        case = self.get(case_id)
        doomed = self.cases_dir / f".removing-{case.case_id}-{uuid.uuid4().hex[:6]}"
        os.rename(case.folder, doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def clean(self) -> None:
        """Delete staging leftovers of a killed process (hidden folders)."""
        if self.cases_dir.is_dir():
            for folder in self.cases_dir.iterdir():
                if folder.name.startswith((".adding-", ".removing-")):
                    shutil.rmtree(folder, ignore_errors=True)


def user_default_model(root: str | os.PathLike) -> Path:
    """Where the user's own default model lives; segment with it when it exists, else the shipped model."""
    return Path(root) / USER_DEFAULT_MODEL


def revert_to_shipped(root: str | os.PathLike) -> None:
    """Forget the user's default model (the shipped one is used again); its card goes too."""
    path = user_default_model(root)
    for stale in (path, card_path(path)):
        stale.unlink(missing_ok=True)


def card_path(model_path: str | os.PathLike) -> Path:
    return Path(str(model_path) + ".card.json")


def read_card(model_path: str | os.PathLike) -> dict | None:
    """A model's card (``card_path``) as a dict; None when it has none or it cannot be read."""
    try:
        card = json.loads(card_path(model_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def copy_with_card(model_path: Path, target: Path) -> Path:
    """Copy a model and its card (if any) to ``target``, each atomically; the card first, the model last."""
    if not model_path.is_file():
        raise InputError(f"{model_path} does not exist.")
    card = card_path(model_path)
    if card.is_file():
        with atomic_path(card_path(target)) as tmp:
            shutil.copyfile(card, tmp)
    else:
        card_path(target).unlink(missing_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(model_path, tmp)
    return target


def publish_model(staged: str | os.PathLike, models_folder: str | os.PathLike) -> Path:
    """Copy a model written in a private folder (and its card) into ``models_folder`` under a new dated name
    (``finetuned-YYYYmmdd-HHMMSS.pt``, never overwriting); its path there."""
    folder = Path(models_folder)
    stem = f"finetuned-{time.strftime('%Y%m%d-%H%M%S')}"
    target, n = folder / f"{stem}.pt", 1
    while target.exists():
        n += 1
        target = folder / f"{stem}-{n}.pt"
    return copy_with_card(Path(staged), target)


def make_default(model_path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """Make a model (and its card) the user's default: copied to :func:`user_default_model`."""
    return copy_with_card(Path(model_path), user_default_model(root))
