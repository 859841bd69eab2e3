"""A model file's fields checked on load, and the digest of its weights.

Absurd values would cost memory or time before anything fails (start_filters 4000 allocates
gigabytes, spacing 0 a grid without end), so every field is checked against a range no real model
leaves, and the answer names the file and the field. The digest (SHA-256 over every tensor's name,
type, shape and bytes, and the architectures) is written into the file on save and checked on load:
a flipped byte in the weights is found instead of silently changing the result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

import torch

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.fdi import NUM_CLASSES, NUM_CLASSES_MIXED

log = logging.getLogger(__name__)

DIGEST_KEY = "weights_sha256"
STAGES = ("teeth", "types")
# Optional networks: a file without one keeps the digest it always had (older files and models stay valid).
OPTIONAL_STAGES = ("contacts",)
TYPES_INPUTS = ("image", "image+teeth")
SPACING_RANGE_MM = (0.05, 5.0)
PATCH_RANGE = (8, 512)
ARCH_RANGES = {"n_blocks": (1, 7), "start_filters": (1, 256), "dim": (3, 3)}


def weights_digest(data: dict[str, Any]) -> str:
    """SHA-256 of the networks' architecture and weights (in a fixed order, independent of the pickle)."""
    digest = hashlib.sha256()
    for stage in STAGES:
        part = data.get(stage)
        if not isinstance(part, dict):
            digest.update(f"{stage}:none;".encode())
            continue
        _digest_part(digest, stage, part)
    for stage in OPTIONAL_STAGES:
        part = data.get(stage)
        if isinstance(part, dict):
            _digest_part(digest, stage, part)
    return digest.hexdigest()


def _digest_part(digest: Any, stage: str, part: dict[str, Any]) -> None:
    digest.update(f"{stage}:{json.dumps(part.get('arch'), sort_keys=True)};".encode())
    for key in sorted(part.get("state_dict", {})):
        tensor = part["state_dict"][key].detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())


def check_digest(data: dict[str, Any], path: Path, required: bool) -> None:
    """The stored digest must match the weights; a file without one loads only when not ``required``."""
    stored = data.get(DIGEST_KEY)
    if stored is None:
        if required:
            raise InputError(f"Model file {path} has no weights digest; reinstall the extension.")
        log.warning("Model file %s has no weights digest (an older file): its integrity cannot be checked.", path)
        return
    if stored != weights_digest(data):
        raise InputError(
            f"Model file {path} is damaged: its weights do not match the digest stored in it; "
            "copy or download the file again."
        )


def check_model_fields(data: dict[str, Any], path: Path) -> None:
    """Every field a model file uses, checked for type and range; the first problem is an InputError."""
    for name in ("spacing_mm", "teeth_spacing_mm"):
        if name in data:
            _number(data[name], name, path, SPACING_RANGE_MM)
    if "patch_size" in data:
        _whole(data["patch_size"], "patch_size", path, PATCH_RANGE)
    _check_normalization(data.get("normalization", {}), path)
    for name in ("training", "classes"):
        if not isinstance(data.get(name, {}), dict):
            raise InputError(f"Model file {path} has a malformed '{name}' field (not a table); re-save the model.")
    # The types network: 9 classes, or 14 with the primary types (model_file refuses the counts between).
    for stage, out_channels in zip(STAGES, ((1, 1), (NUM_CLASSES, NUM_CLASSES_MIXED)), strict=True):
        _check_stage(data.get(stage), stage, out_channels, path)
    _check_contacts(data.get("contacts"), data.get("types"), path)


def _check_stage(part: Any, stage: str, out_channels: tuple[int, int], path: Path) -> None:
    if part is None:
        return
    arch = _arch_and_weights(part, stage, path)
    for key, bounds in ARCH_RANGES.items():
        _whole(arch.get(key), f"{stage}.arch.{key}", path, bounds)
    types_input = part.get("input", "image")
    if stage == "types" and types_input not in TYPES_INPUTS:
        raise InputError(f"Model file {path} has types.input {types_input!r}; it must be one of {TYPES_INPUTS}.")
    in_channels = 2 if stage == "types" and types_input == "image+teeth" else 1
    _whole(arch.get("in_channels"), f"{stage}.arch.in_channels", path, (in_channels, in_channels))
    _whole(arch.get("out_channels"), f"{stage}.arch.out_channels", path, out_channels)
    _check_finite(part, stage, path)


def _check_contacts(part: Any, types: Any, path: Path) -> None:
    """The optional contacts branch: a one-logit branch on the types network's trunk (nets.contacts_head)."""
    if part is None:
        return
    if not isinstance(types, dict):
        raise InputError(f"Model file {path} has a contacts network but no types network for it to read.")
    arch = _arch_and_weights(part, "contacts", path)
    if arch.get("kind") != "types_branch":
        raise InputError(f"Model file {path} has contacts.arch.kind {arch.get('kind')!r}, not 'types_branch'.")
    _whole(arch.get("out_channels"), "contacts.arch.out_channels", path, (1, 1))
    filters = (types.get("arch") or {}).get("start_filters")
    _whole(arch.get("start_filters"), "contacts.arch.start_filters", path, (filters, filters))
    _check_finite(part, "contacts", path)


def _arch_and_weights(part: Any, stage: str, path: Path) -> dict[str, Any]:
    """A network part's 'arch' table, once the part is a table with an 'arch' table and a table of tensors."""
    if not isinstance(part, dict) or not isinstance(part.get("arch"), dict):
        raise InputError(f"Model file {path} has a malformed '{stage}' network (no 'arch' table); re-save it.")
    if not isinstance(part.get("state_dict"), dict) or not all(
        isinstance(v, torch.Tensor) for v in part["state_dict"].values()
    ):
        raise InputError(f"Model file {path} has a malformed '{stage}.state_dict' (not a table of tensors).")
    return part["arch"]


def _check_finite(part: dict[str, Any], stage: str, path: Path) -> None:
    for key, tensor in part["state_dict"].items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise InputError(f"Model file {path} has NaN or infinite weights in {stage}.{key}; retrain the model.")


def _check_normalization(norm: Any, path: Path) -> None:
    if not isinstance(norm, dict):
        raise InputError(f"Model file {path} has a malformed 'normalization' field (not a table); re-save it.")
    if norm.get("method", "percentile") != "percentile":
        raise InputError(f"Model file {path} has an unknown normalization.method {norm.get('method')!r}.")
    values = {k: _number(norm.get(k, d), f"normalization.{k}", path, r) for k, d, r in _NORM_FIELDS}
    if not values["low_percentile"] < values["high_percentile"] or not values["clip_low"] < values["clip_high"]:
        raise InputError(f"Model file {path} has a normalization whose low bounds are not below its high bounds.")


_NORM_FIELDS = (
    ("low_percentile", 5.0, (0.0, 100.0)),
    ("high_percentile", 99.5, (0.0, 100.0)),
    ("clip_low", -0.5, (-1e3, 1e3)),
    ("clip_high", 2.0, (-1e3, 1e3)),
)


def _number(value: Any, name: str, path: Path, bounds: tuple[float, float]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"Model file {path} has {name} = {value!r}, which is not a number; re-save the model.")
    if not bounds[0] <= value <= bounds[1]:
        raise InputError(
            f"Model file {path} has {name} = {value}, outside {bounds[0]:g}..{bounds[1]:g}; re-save the model."
        )
    return float(value)


def _whole(value: Any, name: str, path: Path, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"Model file {path} has {name} = {value!r}, which is not a whole number; re-save the model.")
    if not bounds[0] <= value <= bounds[1]:
        expected = str(bounds[0]) if bounds[0] == bounds[1] else f"{bounds[0]}..{bounds[1]}"
        raise InputError(f"Model file {path} has {name} = {value}, not {expected}; re-save the model.")
    return value
