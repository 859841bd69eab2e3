"""Training both stages: a loop built from small hooks, like nnU-Net's ``run_training``.

``train(TrainConfig(...), reporter)`` prepares the cases, trains stage 1 (binary teeth on the
coarse grid) and/or stage 2 (9 classes on the fine grid), validates on held-out cases after each
epoch, writes a checkpoint every ``checkpoint_every`` epochs, on cancel and at the end, and finally
the model file with a training summary. ``resume`` continues a checkpoint exactly: the same final
weights as a run that was never interrupted.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from TeethSegmentationLib import __version__
from TeethSegmentationLib.errors import Cancelled, InputError
from TeethSegmentationLib.events import NullReporter, Reporter, jsonable
from TeethSegmentationLib.inference.stages import TYPES_MARGIN_MM
from TeethSegmentationLib.nets.devices import describe_device, resolve_device
from TeethSegmentationLib.nets.model_file import TYPES_INPUTS, TeethModel, load_model, new_model, save_model
from TeethSegmentationLib.nets.unet import build_unet
from TeethSegmentationLib.training import distributed as ddp
from TeethSegmentationLib.training.augment import NO_AUGMENTATION, AugmentParams
from TeethSegmentationLib.training.checkpoint import (
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from TeethSegmentationLib.training.dataset import (
    Case,
    PatchDataset,
    PreparedCase,
    SamplingParams,
    cases_from_paths,
    find_cases,
    prepare_cases,
    stage_target,
)
from TeethSegmentationLib.training.losses import stage_loss
from TeethSegmentationLib.training.validation import validation_dice

STAGE_NETS = {1: "teeth", 2: "types"}
OPTIMIZERS = ("adam", "rmsprop")
LR_SCHEDULES = ("poly", "constant")
DEBUG_RANK_DIR_ENV = "TEETHSEG_DEBUG_RANK_DIR"  # tests: every rank dumps its final weights there
RESUME_MAY_CHANGE = ("epochs", "workers", "device", "resume", "checkpoint_every", "output")


@dataclass
class TrainConfig:
    output: str = "model.pt"
    images: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    data_dir: str | None = None
    stage: str = "both"  # "1", "2" or "both"
    epochs: int = 10  # per stage
    steps_per_epoch: int = 50
    patch: int = 64
    batch: int = 2
    lr: float = 1e-3
    optimizer: str = "adam"
    lr_schedule: str = "poly"  # per epoch, nnU-Net's lr * (1 - epoch / epochs) ** 0.9; or "constant"
    cross_entropy: bool = True  # add (binary) cross-entropy to the Dice loss: steadier early training
    device: str = "auto"
    init: str | None = None  # fine-tune from this model file
    resume: str | None = None  # continue this checkpoint
    val_fraction: float = 0.2
    seed: int = 0
    workers: int = 0
    checkpoint_every: int = 1
    label_kind: str = "auto"
    label_table: str | None = None
    teeth_spacing_mm: float | None = None  # None: the init model's, else 1.0
    spacing_mm: float | None = None  # None: the init model's, else 0.5
    filters_teeth: int | None = None  # start filters of stage 1 (seed 18)
    filters_types: int | None = None  # start filters of stage 2 (seed 9)
    types_input: str = "image"  # or "image+teeth"
    augment: bool = True
    foreground_fraction: float = 2 / 3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def stages(self) -> list[int]:
        return {"1": [1], "2": [2], "both": [1, 2]}[str(self.stage)]


def check_config(config: TrainConfig) -> None:
    """One sentence for each kind of bad setting, before any data is read."""
    if str(config.stage) not in ("1", "2", "both"):
        raise InputError(f"Unknown stage {config.stage!r}; use 1, 2 or both.")
    if config.optimizer not in OPTIMIZERS:
        raise InputError(f"Unknown optimizer {config.optimizer!r}; use adam or rmsprop.")
    if config.types_input not in TYPES_INPUTS:
        raise InputError(f"Unknown stage-2 input {config.types_input!r}; use image or image+teeth.")
    for name in ("epochs", "steps_per_epoch", "patch", "batch", "checkpoint_every"):
        if int(getattr(config, name)) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1.")
    if not 0 <= config.val_fraction < 1:
        raise InputError("--val-fraction must be at least 0 and below 1.")
    if not config.lr > 0:
        raise InputError("--lr must be positive.")
    if config.lr_schedule not in LR_SCHEDULES:
        raise InputError(f"Unknown learning-rate schedule {config.lr_schedule!r}; use poly or constant.")


# --- Small pure pieces (shared with scripts/benchmark_train.py).


def scheduled_lr(base_lr: float, schedule: str, epoch: int, epochs: int) -> float:
    """Learning rate of (0-based) ``epoch`` of ``epochs``: poly decay, which ends small but not at zero."""
    if schedule == "constant" or epochs <= 1:
        return base_lr
    return base_lr * (1.0 - epoch / epochs) ** 0.9


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    raise InputError(f"Unknown optimizer {name!r}; use adam or rmsprop.")


def train_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    images: torch.Tensor,
    targets: torch.Tensor,
    with_ce: bool = False,
) -> float:
    """One optimisation step; mixed precision on CUDA (when the scaler is enabled), float32 on the CPU."""
    device = next(net.parameters()).device
    images = images.to(device, non_blocking=True).contiguous(memory_format=training_layout(device))
    targets = targets.to(device, non_blocking=True)
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
        logits = net(images)
    loss = stage_loss(logits, targets, with_ce)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


def training_layout(device: torch.device) -> torch.memory_format:
    """Channels-last 3-D on the CPU: about 1.5x faster steps of these small networks; default elsewhere."""
    return torch.channels_last_3d if device.type == "cpu" else torch.contiguous_format


def split_cases(cases: list[Case], val_fraction: float, seed: int) -> tuple[list[Case], list[Case]]:
    """(training, validation): a seeded shuffle; at least one of each when there are two cases or more."""
    if val_fraction <= 0 or len(cases) < 2:
        return list(cases), []
    order = np.random.default_rng(seed).permutation(len(cases))
    n_val = min(len(cases) - 1, max(1, int(round(val_fraction * len(cases)))))
    val = sorted(order[:n_val].tolist())
    return [c for i, c in enumerate(cases) if i not in val], [cases[i] for i in val]


# --- The trainer.


class Trainer:
    """Holds the run's state; ``run()`` calls the hooks in order."""

    def __init__(self, config: TrainConfig, reporter: Reporter | None = None) -> None:
        self.config = config
        self.ctx = ddp.context_from_env()
        self.reporter: Reporter = (reporter or NullReporter()) if self.ctx.is_main else NullReporter()
        self.epoch = 0  # completed epochs over all stages
        self.step = 0  # completed steps in the current epoch
        self.loss_sum = 0.0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, float] = {}
        self.best_weights: dict[str, dict[str, torch.Tensor]] = {}  # per stage, at its best validation
        self.val_dice: dict[str, dict[str, float]] = {}
        self.epoch_seconds: list[float] = []
        self._stop: str | None = None
        self._data: dict[int, tuple[list[PreparedCase], list[PreparedCase]]] = {}
        self._resumed: dict[str, Any] | None = None

    # -- hooks

    def run(self) -> dict[str, Any]:
        previous = self._install_signal_handlers()
        try:
            self.on_train_start()
            while self.epoch < self.total_epochs:
                self.run_epoch()
            return self.on_train_end()
        except (Cancelled, KeyboardInterrupt) as error:
            self.on_cancel()
            raise Cancelled(str(error) or "training cancelled") from None
        except RuntimeError:
            if self._stop:  # e.g. a DataLoader worker killed by the same Ctrl-C
                self.on_cancel()
                raise Cancelled(self._stop) from None
            raise
        finally:
            self._restore_signal_handlers(previous)
            ddp.shutdown(self.ctx)

    def on_train_start(self) -> None:
        if self.config.resume:
            self._resumed = load_checkpoint(self.config.resume)
            self.config = self._merge_resumed_config(self._resumed["config"])
        check_config(self.config)
        cfg = self.config
        self.device = ddp.setup(self.ctx, resolve_device(cfg.device))
        self.amp = self.device.type == "cuda"
        self.cases = self._find_cases()
        self.train_cases, self.val_cases = split_cases(self.cases, cfg.val_fraction, cfg.seed)
        torch.manual_seed(cfg.seed)
        self.model = self._build_model()
        self.stages = cfg.stages()
        self.total_epochs = cfg.epochs * len(self.stages)
        layout = training_layout(self.device)
        self.nets = {
            s: getattr(self.model, f"{STAGE_NETS[s]}_net").to(self.device, memory_format=layout) for s in self.stages
        }
        self.wrapped = {s: ddp.wrap(net, self.ctx, self.device) for s, net in self.nets.items()}
        self.optimizers = {s: make_optimizer(cfg.optimizer, net.parameters(), cfg.lr) for s, net in self.nets.items()}
        self.scalers = {s: torch.amp.GradScaler(self.device.type, enabled=self.amp) for s in self.stages}
        if self._resumed is not None:
            self._restore(self._resumed)
        self.started = time.monotonic()
        self.reporter.log(
            f"training stage(s) {', '.join(map(str, self.stages))} on {describe_device(self.device)}"
            f"{f' x {self.ctx.world_size} processes' if self.ctx.enabled else ''}: {len(self.train_cases)} "
            f"training and {len(self.val_cases)} validation cases"
        )

    def run_epoch(self) -> None:
        self.check_stop()
        stage = self.current_stage
        train_cases, _ = self.stage_data(stage)
        cfg = self.config
        dataset = PatchDataset(
            train_cases, self.sampling_params(stage), stage, cfg.steps_per_epoch * cfg.batch, cfg.seed, self.ctx.rank
        )
        dataset.set_epoch(self.epoch)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=cfg.batch,
            sampler=range(self.step * cfg.batch, len(dataset)),
            num_workers=cfg.workers,
            pin_memory=self.device.type == "cuda",
        )
        for group in self.optimizers[stage].param_groups:
            group["lr"] = scheduled_lr(cfg.lr, cfg.lr_schedule, self.stage_epoch, cfg.epochs)
        self.wrapped[stage].train()
        start = time.monotonic()
        for images, targets in loader:
            self.check_stop()
            loss = train_step(
                self.wrapped[stage], self.optimizers[stage], self.scalers[stage], images, targets, cfg.cross_entropy
            )
            self.step += 1
            self.loss_sum += loss
            self.on_step_end(stage, loss)
        self.on_epoch_end(stage, time.monotonic() - start)

    def on_step_end(self, stage: int, loss: float) -> None:
        cfg = self.config
        done = self.epoch * cfg.steps_per_epoch + self.step
        self.reporter.progress(
            f"train stage {stage}",
            done / (self.total_epochs * cfg.steps_per_epoch),
            f"epoch {self.stage_epoch + 1}/{cfg.epochs} step {self.step}/{cfg.steps_per_epoch} loss {loss:.4f}",
        )

    def on_epoch_end(self, stage: int, seconds: float) -> None:
        cfg = self.config
        loss = ddp.mean_across_ranks(self.loss_sum / max(1, cfg.steps_per_epoch), self.ctx, self.device)
        stage_epoch = self.stage_epoch + 1
        self.epoch += 1
        self.step, self.loss_sum = 0, 0.0
        self.epoch_seconds.append(seconds)
        val = self.validate(stage)
        record = {"stage": stage, "epoch": stage_epoch, "loss": loss, "val_dice": val, "seconds": seconds}
        self.history.append(record)
        if val and not math.isnan(val["mean"]):
            self.remember_if_best(stage, val["mean"])
        eta = float(np.mean(self.epoch_seconds)) * (self.total_epochs - self.epoch)
        self.reporter.progress(
            f"train stage {stage}",
            self.epoch / self.total_epochs,
            f"epoch {stage_epoch}/{cfg.epochs} loss {loss:.4f}" + (f" val Dice {val['mean']:.3f}" if val else ""),
            epoch=stage_epoch,
            epochs=cfg.epochs,
            loss=loss,
            val_dice=val,
            seconds_per_epoch=seconds,
            eta_seconds=eta,
        )
        if self.epoch % cfg.checkpoint_every == 0 or self.epoch == self.total_epochs:
            self.save_checkpoint()
        if self.epoch < self.total_epochs and self.current_stage != stage:
            self._data.pop(stage, None)  # stage 1 data is not needed any more

    def remember_if_best(self, stage: int, score: float) -> None:
        """Keep a copy of the weights at the best validation Dice: the model file gets those, not the last."""
        key = STAGE_NETS[stage]
        if score > self.best.get(key, -1.0):
            self.best[key] = score
            self.best_weights[key] = {k: v.detach().cpu().clone() for k, v in self.nets[stage].state_dict().items()}

    def restore_best(self) -> None:
        for stage, net in self.nets.items():
            weights = self.best_weights.get(STAGE_NETS[stage])
            if weights is not None:
                net.load_state_dict(weights)
                self.reporter.log(f"stage {stage}: keeping the weights of the best validation Dice")

    def validate(self, stage: int) -> dict[str, float]:
        _, val_cases = self.stage_data(stage)
        if not val_cases or not self.ctx.is_main:
            ddp.barrier(self.ctx)
            return {}
        scores = validation_dice(self.model, val_cases, stage, self.device, self.types_margin() if stage == 2 else None)
        self.nets[stage].to(self.device, memory_format=training_layout(self.device))  # the predictor's may differ
        self.val_dice[STAGE_NETS[stage]] = scores
        ddp.barrier(self.ctx)
        return scores

    def on_cancel(self) -> None:
        if hasattr(self, "optimizers"):
            self.save_checkpoint()
            self.reporter.log(f"cancelled; continue with --resume {checkpoint_path(self.config.output)}", "warning")

    def on_train_end(self) -> dict[str, Any]:
        for net in self.nets.values():
            ddp.sync_buffers(net, self.ctx)
        self._debug_dump()
        self.restore_best()
        for net in self.nets.values():
            net.to(memory_format=torch.contiguous_format)
        summary = self.summary()
        if self.ctx.is_main:
            self.model.training = {**summary, "previous": self.model.training} if self.config.init else summary
            save_model(self.model, self.config.output)
        ddp.barrier(self.ctx)
        return summary

    # -- pieces

    @property
    def current_stage(self) -> int:
        return self.stages[min(self.epoch // self.config.epochs, len(self.stages) - 1)]

    @property
    def stage_epoch(self) -> int:
        return self.epoch % self.config.epochs

    def teeth_channel(self, stage: int) -> bool:
        return stage == 2 and self.model.types_input == "image+teeth"

    def sampling_params(self, stage: int) -> SamplingParams:
        return SamplingParams(
            patch=self._patch(stage),
            foreground_fraction=self.config.foreground_fraction,
            augment=AugmentParams() if self.config.augment else NO_AUGMENTATION,
            teeth_channel=self.teeth_channel(stage),
            background_margin=self.types_margin() if stage == 2 else None,
        )

    def types_margin(self) -> int:
        """Stage 2's context margin in voxels of its grid."""
        return int(round(TYPES_MARGIN_MM / self.model.spacing_mm))

    def _patch(self, stage: int) -> int:
        divisor = self.nets[stage].divisor
        return int(math.ceil(self.config.patch / divisor) * divisor)

    def stage_data(self, stage: int) -> tuple[list[PreparedCase], list[PreparedCase]]:
        if stage not in self._data:
            cfg = self.config
            spacing = self.model.teeth_spacing_mm if stage == 1 else self.model.spacing_mm
            args = (spacing, self.model.normalization, cfg.label_kind, cfg.label_table, self.reporter)
            train = prepare_cases(self.train_cases, *args, stage_name=f"prepare stage {stage}")
            val = prepare_cases(self.val_cases, *args, stage_name=f"prepare stage {stage}")
            if stage == 2:
                for case in train + val:
                    stage_target(case.labels[:1, :1, :1], case.kind, 2)  # binary labels cannot train stage 2
            self._data[stage] = (train, val)
        return self._data[stage]

    def _find_cases(self) -> list[Case]:
        cfg = self.config
        if cfg.data_dir and cfg.images:
            raise InputError("Give either --data or --images/--labels, not both.")
        return find_cases(cfg.data_dir) if cfg.data_dir else cases_from_paths(list(cfg.images), list(cfg.labels))

    def _build_model(self) -> TeethModel:
        cfg = self.config
        if cfg.init:
            model = load_model(cfg.init)
            model.training = dict(model.training)
            if 2 in cfg.stages() and cfg.types_input != model.types_input:
                self.reporter.log(f"stage 2 keeps the init model's input {model.types_input!r}", "warning")
        else:
            model = new_model(
                types_input=cfg.types_input,
                teeth_arch={"start_filters": cfg.filters_teeth} if cfg.filters_teeth else None,
                types_arch={"start_filters": cfg.filters_types} if cfg.filters_types else None,
            )
        if model.teeth_net is None:
            model.teeth_net = new_model().teeth_net
        if model.types_net is None:
            model.types_net = new_model(types_input=model.types_input).types_net
        if cfg.teeth_spacing_mm:
            model.teeth_spacing_mm = float(cfg.teeth_spacing_mm)
        if cfg.spacing_mm:
            model.spacing_mm = float(cfg.spacing_mm)
        return model

    def check_stop(self) -> None:
        if self._stop:
            raise Cancelled(self._stop)

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, frame: Any) -> None:
            reason = f"stopped by signal {signal.Signals(signum).name}"
            if self._stop:  # a second signal: stop now, between steps or not
                raise Cancelled(reason)
            self._stop = reason  # the loop stops after this step, with a checkpoint

        return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    # -- checkpoints

    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "config": jsonable(self.config.to_dict()),
            "epoch": self.epoch,
            "step": self.step,
            "loss_sum": self.loss_sum,
            "nets": {
                STAGE_NETS[s]: {k: v.detach().cpu() for k, v in net.state_dict().items()}
                for s, net in ((1, self.model.teeth_net), (2, self.model.types_net))
            },
            "archs": {"teeth": dict(self.model.teeth_net.config), "types": dict(self.model.types_net.config)},
            "model": {
                "spacing_mm": self.model.spacing_mm,
                "teeth_spacing_mm": self.model.teeth_spacing_mm,
                "types_input": self.model.types_input,
                "normalization": self.model.normalization.to_dict(),
                "training": jsonable(self.model.training),
            },
            "optimizers": {str(s): opt.state_dict() for s, opt in self.optimizers.items()},
            "scalers": {str(s): scaler.state_dict() for s, scaler in self.scalers.items()},
            "best": jsonable(self.best),
            "best_weights": self.best_weights,
            "val_dice": jsonable(self.val_dice),
            "history": jsonable(self.history),
            "epoch_seconds": jsonable(self.epoch_seconds),
        }

    def save_checkpoint(self) -> None:
        if self.ctx.is_main:
            save_checkpoint(checkpoint_path(self.config.output), self.checkpoint_state())

    def _merge_resumed_config(self, saved: dict[str, Any]) -> TrainConfig:
        merged = TrainConfig.from_dict(saved)
        given = self.config
        changed = [
            f.name
            for f in fields(TrainConfig)
            if f.name not in RESUME_MAY_CHANGE
            and getattr(given, f.name) != getattr(TrainConfig(), f.name)
            and getattr(given, f.name) != getattr(merged, f.name)
        ]
        if changed:
            self.reporter.log(f"resuming with the checkpoint's settings for {', '.join(changed)}", "warning")
        for name in RESUME_MAY_CHANGE:
            setattr(merged, name, getattr(given, name))
        return merged

    def _restore(self, state: dict[str, Any]) -> None:
        for name in ("teeth", "types"):
            net = getattr(self.model, f"{name}_net")
            if dict(net.config) != dict(state["archs"][name]):
                setattr(self.model, f"{name}_net", build_unet(state["archs"][name]).to(self.device))
            getattr(self.model, f"{name}_net").load_state_dict(state["nets"][name])
        saved = state.get("model", {})
        self.model.spacing_mm = float(saved.get("spacing_mm", self.model.spacing_mm))
        self.model.teeth_spacing_mm = float(saved.get("teeth_spacing_mm", self.model.teeth_spacing_mm))
        self.model.training = dict(saved.get("training", self.model.training))
        for s, opt in self.optimizers.items():
            if str(s) in state["optimizers"]:
                opt.load_state_dict(state["optimizers"][str(s)])
        for s, scaler in self.scalers.items():
            if str(s) in state["scalers"]:
                scaler.load_state_dict(state["scalers"][str(s)])
        self.epoch, self.step, self.loss_sum = int(state["epoch"]), int(state["step"]), float(state["loss_sum"])
        self.best, self.val_dice = dict(state["best"]), dict(state["val_dice"])
        self.best_weights = dict(state.get("best_weights", {}))
        self.history, self.epoch_seconds = list(state["history"]), list(state["epoch_seconds"])
        set_rng_state(state["rng"])
        self.reporter.log(f"resumed at epoch {self.epoch} step {self.step} from {self.config.resume}")

    # -- results

    def summary(self) -> dict[str, Any]:
        cfg = self.config
        return jsonable(
            {
                "output": str(Path(cfg.output)),
                "checkpoint": str(checkpoint_path(cfg.output)),
                "stages_trained": [STAGE_NETS[s] for s in self.stages],
                "epochs": cfg.epochs,
                "steps_per_epoch": cfg.steps_per_epoch,
                "patch": cfg.patch,
                "batch": cfg.batch,
                "optimizer": cfg.optimizer,
                "lr": cfg.lr,
                "lr_schedule": cfg.lr_schedule,
                "cases": len(self.cases),
                "train_cases": [c.name for c in self.train_cases],
                "validation_cases": [c.name for c in self.val_cases],
                "final_loss": {STAGE_NETS[r["stage"]]: r["loss"] for r in self.history},
                "val_dice": self.val_dice,
                "best_val_dice": self.best,
                "history": self.history,
                "seconds": round(time.monotonic() - self.started, 2),
                "device": describe_device(self.device),
                "world_size": self.ctx.world_size,
                "label_table": cfg.label_table,
                "label_kind": cfg.label_kind,
                "init": cfg.init,
                "software_version": __version__,
                "torch_version": str(torch.__version__),
            }
        )

    def _debug_dump(self) -> None:
        folder = os.environ.get(DEBUG_RANK_DIR_ENV)
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            state = {
                f"{STAGE_NETS[s]}.{k}": v.detach().cpu()
                for s, net in self.nets.items()
                for k, v in net.state_dict().items()
            }
            torch.save({"state": state, "history": self.history}, Path(folder) / f"rank{self.ctx.rank}.pt")


def train(config: TrainConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Train, write ``config.output`` (model file) and ``<output>.ckpt``; the training summary."""
    return Trainer(config, reporter).run()
