"""A fine-tuned model's lineage and card: parent (name + SHA-256), number of cases, date, held-back figures.

The model file's ``training`` record keeps settings and figures only: never a case name, a path
or an image (case files are often named after the patient). A parent's own record is kept under
``previous`` with the same whitelist. The card (``MODEL.pt.card.json``) is the same summary for the
Slicer module's model list, readable without torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from TeethSegmentationLib.atomic import atomic_path
from TeethSegmentationLib.case_library import card_path
from TeethSegmentationLib.nets.model_file import TeethModel, save_model

KEPT = (
    "stages_trained", "epochs", "steps_per_epoch", "patch", "batch", "optimizer", "lr", "lr_schedule",
    "final_loss", "best_val_dice", "seconds", "device", "software_version", "torch_version", "finetune", "previous",
    "augment", "scanner_augment", "artefact_augment", "precision",
)  # fmt: skip


def file_digest(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scrubbed(training: dict[str, Any]) -> dict[str, Any]:
    """A training record without case names or paths (the whitelist ``KEPT``, ``previous`` likewise)."""
    out = {k: v for k, v in training.items() if k in KEPT}
    if isinstance(out.get("previous"), dict):
        out["previous"] = scrubbed(out["previous"])
    return out


def finetuned_training(parent: TeethModel, init: Path, summary: dict[str, Any], result: dict[str, Any]) -> dict:
    """The new model's ``training`` record: the run's settings, its lineage and the held-back figures."""
    record = scrubbed({k: v for k, v in summary.items() if k not in ("finetune", "previous")})
    record["finetune"] = {
        "parent": {"name": init.name, "sha256": file_digest(init)},
        "cases": result["used_cases"],
        "train_cases": result["train_cases"],
        "held_back_cases": 0 if result["held_back"] is None else 1,
        "replay_phantoms": result["replay_phantoms"],
        "epochs_run": result["epochs_run"],
        "mix": result.get("mix", 1.0),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "held_back": result["held_back"],
        "figure": result["figure"],
        "better": result["better"],
    }
    record["previous"] = scrubbed(parent.training)
    return record


def card(model: TeethModel) -> dict[str, Any]:
    tuned = model.training.get("finetune", {})
    return {
        "title": f"Fine-tuned on {tuned.get('cases', 0)} of your cases ({tuned.get('date', '')[:10]})",
        "parent": tuned.get("parent"),
        "cases": tuned.get("cases"),
        "date": tuned.get("date"),
        "figure": tuned.get("figure"),
        "better": tuned.get("better"),
        "held_back": tuned.get("held_back"),
        "mix": tuned.get("mix", 1.0),  # the fine-tuned share of the weights, the rest the parent's
    }


def save_with_card(model: TeethModel, output: str | os.PathLike) -> Path:
    """Write the card, then the model (each atomically); the card's path."""
    target = card_path(output)
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(card(model), indent=2), encoding="utf-8")
    save_model(model, output)
    return target
