"""A trainer's state in a checkpoint and back: what ``--resume`` needs to continue exactly.

Checkpoints before stages had names keyed the optimisers and the history by 1 and 2; both are read.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from TeethSegmentationLib.events import Reporter, jsonable
from TeethSegmentationLib.nets.contacts_head import build_branch
from TeethSegmentationLib.nets.unet import build_unet
from TeethSegmentationLib.training.checkpoint import set_rng_state
from TeethSegmentationLib.training.config import STAGES, TrainConfig

# Settings a resumed run may change; the others are the checkpoint's. The outputs go where the resuming
# command line says, never where the checkpoint was first written.
RESUME_MAY_CHANGE = ("epochs", "workers", "device", "resume", "checkpoint_every", "output")
_LEGACY_KEYS = {"1": "teeth", "2": "types", 1: "teeth", 2: "types"}


def checkpoint_state(trainer: Any) -> dict[str, Any]:
    """Everything of a ``Trainer`` that continues the run: tensors as they are, the rest as plain values."""
    model = trainer.model
    return {
        "config": jsonable(trainer.config.to_dict()),
        "epoch": trainer.epoch,
        "step": trainer.step,
        "loss_sum": trainer.loss_sum,
        "nets": {s: {k: v.detach().cpu() for k, v in net.state_dict().items()} for s, net in model.nets.items()},
        "archs": {s: dict(net.config) for s, net in model.nets.items()},
        "model": {
            "spacing_mm": model.spacing_mm,
            "teeth_spacing_mm": model.teeth_spacing_mm,
            "types_input": model.types_input,
            "normalization": model.normalization.to_dict(),
            "training": jsonable(model.training),
        },
        "optimizers": {s: opt.state_dict() for s, opt in trainer.optimizers.items()},
        "scalers": {s: scaler.state_dict() for s, scaler in trainer.scalers.items()},
        "best": jsonable(trainer.best),
        "best_weights": trainer.best_weights,
        "val_dice": jsonable(trainer.val_dice),
        "history": jsonable(trainer.history),
        "epoch_seconds": jsonable(trainer.epoch_seconds),
    }


def merge_config(saved: dict[str, Any], given: TrainConfig, reporter: Reporter) -> TrainConfig:
    """The checkpoint's settings, except those a resumed run may change (``RESUME_MAY_CHANGE``)."""
    merged = TrainConfig.from_dict(saved)
    default = TrainConfig()
    changed = [
        f.name
        for f in fields(TrainConfig)
        if f.name not in RESUME_MAY_CHANGE
        and getattr(given, f.name) != getattr(default, f.name)
        and getattr(given, f.name) != getattr(merged, f.name)
    ]
    if changed:
        reporter.log(f"resuming with the checkpoint's settings for {', '.join(changed)}", "warning")
    for name in RESUME_MAY_CHANGE:
        setattr(merged, name, getattr(given, name))
    return merged


def restore(trainer: Any, state: dict[str, Any]) -> None:
    """Put a checkpoint's weights, optimiser states, counters, history and RNG states into ``trainer``."""
    model = trainer.model
    for name in (s for s in STAGES if s in state["archs"]):  # a checkpoint without contacts has no such net
        net = getattr(model, f"{name}_net")
        if net is None or dict(net.config) != dict(state["archs"][name]):
            setattr(model, f"{name}_net", _build(name, state["archs"][name], model).to(trainer.device))
        getattr(model, f"{name}_net").load_state_dict(state["nets"][name])
    if model.contacts_net is not None:
        model.contacts_net.attach(model.types_net)  # the types network may have been rebuilt above
    saved = state.get("model", {})
    model.spacing_mm = float(saved.get("spacing_mm", model.spacing_mm))
    model.teeth_spacing_mm = float(saved.get("teeth_spacing_mm", model.teeth_spacing_mm))
    model.training = dict(saved.get("training", model.training))
    for kind, objects in (("optimizers", trainer.optimizers), ("scalers", trainer.scalers)):
        stored = _by_stage(state[kind])
        for stage, obj in objects.items():
            if stage in stored:
                obj.load_state_dict(stored[stage])
    trainer.epoch, trainer.step, trainer.loss_sum = int(state["epoch"]), int(state["step"]), float(state["loss_sum"])
    trainer.best, trainer.val_dice = dict(state["best"]), dict(state["val_dice"])
    trainer.best_weights = dict(state.get("best_weights", {}))
    trainer.history = [{**r, "stage": _LEGACY_KEYS.get(r["stage"], r["stage"])} for r in state["history"]]
    trainer.epoch_seconds = list(state["epoch_seconds"])
    set_rng_state(state["rng"])
    trainer.reporter.log(f"resumed at epoch {trainer.epoch} step {trainer.step} from {trainer.config.resume}")


def _build(stage: str, arch: dict[str, Any], model: Any) -> Any:
    """A stage's network from a checkpoint's architecture (the contacts branch attached to the types network)."""
    return build_branch(arch).attach(model.types_net) if stage == "contacts" else build_unet(arch)


def _by_stage(stored: dict) -> dict[str, Any]:
    return {_LEGACY_KEYS.get(key, key): value for key, value in stored.items()}
