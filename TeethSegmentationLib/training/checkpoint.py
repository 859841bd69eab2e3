"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (so it loads with
``weights_only=True``), written atomically next to the model file as ``<output>.ckpt``::

    {"format": "teethseg-checkpoint", "format_version": 1, "software_version": "0.1.0",
     "config": {...TrainConfig...}, "epoch": 3, "step": 0, "loss_sum": 0.0,
     "nets": {"teeth": state_dict, "types": state_dict}, "archs": {...}, "types_input": "image",
     "optimizers": {"1": state_dict, ...}, "scalers": {"1": state_dict, ...},
     "rng": {"torch": tensor, "numpy": {...}, "python": [...]}, "best": {...}, "history": [...]}
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from TeethSegmentationLib import __version__
from TeethSegmentationLib.nets.model_file import atomic_torch_save, load_tagged_dict

CHECKPOINT_FORMAT = "teethseg-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1


def checkpoint_path(output: str | os.PathLike) -> Path:
    """``model.pt`` -> ``model.pt.ckpt``."""
    output = Path(output)
    return output.with_name(output.name + ".ckpt")


def rng_state() -> dict[str, Any]:
    """torch, numpy and python global RNG states as tensors and plain lists."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, python_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": version, "internal": list(internal), "gauss": python_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors, and plain values as ``events.jsonable`` gives them) with the format tag and the
    RNG states, atomically."""
    path = Path(path)
    record = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "software_version": __version__,
        "rng": rng_state(),
        **state,
    }
    atomic_torch_save(record, path)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict; a missing, damaged, foreign or newer file is an InputError."""
    return load_tagged_dict(
        path,
        "Checkpoint",
        "training checkpoint",
        CHECKPOINT_FORMAT,
        CHECKPOINT_FORMAT_VERSION,
        "pass the .ckpt file written next to the model",
    )
