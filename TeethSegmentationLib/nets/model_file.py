"""The model file: both networks plus everything needed to use them, loadable with weights_only=True.

A model file is a plain dict of tensors, numbers and strings::

    {"format": "teethseg-model", "format_version": 1, "software_version": "0.1.0",
     "spacing_mm": 0.5, "teeth_spacing_mm": 1.0, "normalization": {...},
     "classes": {"0": "background", "1": "central incisor", ...},
     "teeth": {"arch": {...UNet config...}, "state_dict": {...}},            # stage 1, binary teeth
     "types": {"arch": {...}, "state_dict": {...}, "input": "image" | "image+teeth"},  # stage 2, 9 classes
     "contacts": {"arch": {"kind": "types_branch", ...}, "state_dict": {...}},  # optional: where teeth touch
     "patch_size": 96, "training": {...summary: data, epochs, validation Dice...}}

Files from another program, a newer format or a damaged file are refused with one clear sentence.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from TeethSegmentationLib import __version__
from TeethSegmentationLib.atomic import atomic_path
from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.events import jsonable
from TeethSegmentationLib.fdi import NUM_CLASSES, NUM_CLASSES_MIXED, class_names
from TeethSegmentationLib.nets.contacts_head import ContactsBranch, build_branch
from TeethSegmentationLib.nets.model_fields import (
    DIGEST_KEY,
    TYPES_INPUTS,
    check_digest,
    check_model_fields,
    weights_digest,
)
from TeethSegmentationLib.nets.normalize import Normalization
from TeethSegmentationLib.nets.unet import UNet, build_unet

MODEL_FORMAT = "teethseg-model"
MODEL_FORMAT_VERSION = 1
DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[2] / "Resources" / "Models" / "teethseg-default.pt"

TEETH_ARCH = dict(in_channels=1, out_channels=1, n_blocks=3, start_filters=9, dim=3)  # as the shipped model
TYPES_ARCH = dict(in_channels=1, out_channels=NUM_CLASSES, n_blocks=3, start_filters=9, dim=3)


@dataclass
class TeethModel:
    """Stage 1 (binary teeth) and stage 2 (background + 8 types) with their preprocessing.

    Stage 1 runs on a coarse grid (``teeth_spacing_mm``) to find the teeth box fast, even in a
    whole-head scan; stage 2 runs on the fine grid (``spacing_mm``) inside that box only, with the optional
    contacts branch on its trunk (one logit: the interface between touching teeth; ``nets.contacts_head``).
    """

    teeth_net: UNet | None
    types_net: UNet | None
    contacts_net: ContactsBranch | None = None
    spacing_mm: float = 0.5
    teeth_spacing_mm: float = 1.0
    normalization: Normalization = field(default_factory=Normalization)
    types_input: str = "image"
    patch_size: int = 96
    training: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if self.types_input not in TYPES_INPUTS:
            raise ValueError(f"types_input must be one of {TYPES_INPUTS}")

    @property
    def nets(self) -> dict[str, torch.nn.Module]:
        """The networks the model has, by stage name ("teeth", "types", "contacts")."""
        found = {"teeth": self.teeth_net, "types": self.types_net, "contacts": self.contacts_net}
        return {stage: net for stage, net in found.items() if net is not None}

    def to(self, device: torch.device | str) -> TeethModel:
        for net in self.nets.values():
            net.to(device)
        return self

    def eval(self) -> TeethModel:
        for net in self.nets.values():
            net.eval()
        return self

    @property
    def num_classes(self) -> int:
        """Classes of the types network: 9 (background + 8 permanent types) or 14 (+ 5 primary types)."""
        return NUM_CLASSES if self.types_net is None else int(self.types_net.config["out_channels"])

    def describe(self) -> dict[str, Any]:
        described = {
            "source": self.source,
            "spacing_mm": self.spacing_mm,
            "teeth_spacing_mm": self.teeth_spacing_mm,
            "types_input": self.types_input,
            "teeth_arch": None if self.teeth_net is None else self.teeth_net.config,
            "types_arch": None if self.types_net is None else self.types_net.config,
            "training": self.training,
        }
        if self.contacts_net is not None:
            described["contacts_arch"] = self.contacts_net.config
        return described


def new_model(
    spacing_mm: float = 0.5,
    teeth_spacing_mm: float = 1.0,
    types_input: str = "image",
    teeth_arch: dict | None = None,
    types_arch: dict | None = None,
    patch_size: int = 96,
) -> TeethModel:
    """Freshly initialised networks with the shipped model's architectures unless told otherwise."""
    teeth_cfg = {**TEETH_ARCH, **(teeth_arch or {})}
    types_cfg = {**TYPES_ARCH, **(types_arch or {})}
    types_cfg["in_channels"] = 2 if types_input == "image+teeth" else 1
    return TeethModel(
        teeth_net=build_unet(teeth_cfg),
        types_net=build_unet(types_cfg),
        spacing_mm=spacing_mm,
        teeth_spacing_mm=teeth_spacing_mm,
        types_input=types_input,
        patch_size=patch_size,
    )


def _unwrap(net: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DistributedDataParallel or torch.compile wrappers."""
    net = getattr(net, "module", net)
    return getattr(net, "_orig_mod", net)


def _stage_dict(net: torch.nn.Module | None) -> dict[str, Any] | None:
    if net is None:
        return None
    net = _unwrap(net)
    return {"arch": dict(net.config), "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}


def model_to_dict(model: TeethModel) -> dict[str, Any]:
    types = _stage_dict(model.types_net)
    if types is not None:
        types["input"] = model.types_input
    contacts = _stage_dict(model.contacts_net)
    data = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "software_version": __version__,
        "spacing_mm": float(model.spacing_mm),
        "teeth_spacing_mm": float(model.teeth_spacing_mm),
        "normalization": model.normalization.to_dict(),
        "classes": {str(i): name for i, name in class_names(model.num_classes).items()},
        "patch_size": int(model.patch_size),
        "teeth": _stage_dict(model.teeth_net),
        "types": types,
        **({} if contacts is None else {"contacts": contacts}),  # absent, not None: older files' digest stands
        # Plain values only (numpy scalars would make the file unloadable with weights_only=True).
        "training": jsonable(dict(model.training)),
    }
    data[DIGEST_KEY] = weights_digest(data)
    return data


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, then rename: a killed run leaves no half file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_model(model: TeethModel, path: str | os.PathLike) -> None:
    atomic_torch_save(model_to_dict(model), path)


def _net_from(stage: dict[str, Any] | None, name: str, path: Path) -> UNet | None:
    if stage is None:
        return None
    try:
        net = build_unet(stage["arch"])
        net.load_state_dict(stage["state_dict"])
    except (KeyError, TypeError, RuntimeError) as error:
        raise InputError(
            f"The {name} network in model file {path} does not match its architecture ({error})."
        ) from None
    return net


def _branch_from(part: dict[str, Any] | None, types: UNet | None, path: Path) -> ContactsBranch | None:
    if part is None:
        return None
    try:
        branch = build_branch(part["arch"]).attach(types)
        branch.load_state_dict(part["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
        raise InputError(
            f"The contacts network in model file {path} does not match its architecture ({error})."
        ) from None
    return branch


def load_tagged_dict(
    path: str | os.PathLike, what: str, kind: str, format_name: str, max_version: int, missing_hint: str
) -> dict[str, Any]:
    """A dict saved with a ``format``/``format_version`` tag, loaded with weights_only=True; every failure
    (missing, damaged, foreign, newer) is an InputError with one sentence. ``what`` starts the sentence
    ("Model file"), ``kind`` names the file type ("model file")."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist; {missing_hint}.")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError) as error:
        if "Unsupported global" in str(error):  # a pickle of objects; torch's advice to unpickle it is not ours
            raise InputError(
                f"{what} {path} cannot be read: it is not a TeethSegmentation {kind} (it holds Python objects "
                f"that a {kind} never contains); use one made by 'teethseg train'."
            ) from None
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        if "weights_only" in str(error):
            first = "not a weights file"
        raise InputError(
            f"{what} {path} cannot be read as a TeethSegmentation {kind} (damaged, or not made by "
            f"'teethseg train': {first[:200]})."
        ) from None
    if not isinstance(data, dict) or data.get("format") != format_name:
        raise InputError(f"{path} is not a TeethSegmentation {kind}; use one made by 'teethseg train'.")
    version = data.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(f"{what} {path} has format_version {version!r}, not a whole number from 1; it is damaged.")
    if version > max_version:
        raise InputError(
            f"{what} {path} has format version {version}, newer than this TeethSegmentation understands "
            f"({max_version}); update the extension."
        )
    return data


def read_model_dict(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check a model file's dict; every failure is an InputError with one sentence."""
    data = load_tagged_dict(
        path,
        "Model file",
        "model file",
        MODEL_FORMAT,
        MODEL_FORMAT_VERSION,
        "pass --model with a .pt file made by 'teethseg train'",
    )
    check_model_fields(data, Path(path))
    return data


def model_from_dict(data: dict[str, Any], source: str = "") -> TeethModel:
    path = Path(source or "<model>")
    teeth = _net_from(data.get("teeth"), "teeth (stage 1)", path)
    types = _net_from(data.get("types"), "tooth-type (stage 2)", path)
    contacts = _branch_from(data.get("contacts"), types, path)
    if teeth is None and types is None:
        raise InputError(f"Model file {path} holds no network.")
    if types is not None and types.config["out_channels"] not in (NUM_CLASSES, NUM_CLASSES_MIXED):
        raise InputError(
            f"The tooth-type network in model file {path} has {types.config['out_channels']} classes; "
            f"this TeethSegmentation reads {NUM_CLASSES} or {NUM_CLASSES_MIXED}."
        )
    return TeethModel(
        teeth_net=teeth,
        types_net=types,
        contacts_net=contacts,
        spacing_mm=float(data.get("spacing_mm", 0.5)),
        teeth_spacing_mm=float(data.get("teeth_spacing_mm", data.get("spacing_mm", 0.5))),
        normalization=Normalization.from_dict(data.get("normalization", {})),
        types_input=(data.get("types") or {}).get("input", "image"),
        patch_size=int(data.get("patch_size", 96)),
        training=dict(data.get("training", {})),
        source=source,
    )


def load_model(path: str | os.PathLike | None = None, device: torch.device | str = "cpu") -> TeethModel:
    """The model at ``path`` (the shipped default when None), in eval mode on ``device``."""
    path = Path(path) if path else DEFAULT_MODEL_PATH
    if not path.exists() and path == DEFAULT_MODEL_PATH:
        raise InputError(
            f"The default model {path} is missing; reinstall the extension or rebuild it with 'make model'."
        )
    data = read_model_dict(path)
    # Files from before the digest still load (with a warning); the shipped model must carry one.
    check_digest(data, path, required=path.resolve() == DEFAULT_MODEL_PATH)
    return model_from_dict(data, source=str(path)).to(device).eval()
