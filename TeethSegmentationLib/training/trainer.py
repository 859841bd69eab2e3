"""Training both stages: a loop built from small hooks, like nnU-Net's ``run_training``.

``train(TrainConfig(...), reporter)`` prepares the cases, trains the teeth network (binary, coarse grid)
and/or the types network (9 classes, fine grid), validates on held-out cases after each epoch through
the segment predictor, writes a checkpoint every ``checkpoint_every`` epochs, on cancel and at the end,
and finally the model file with a training summary. ``resume`` continues a checkpoint exactly: the same
final weights as a run that was never interrupted. A diverging run stops before anything is saved.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from TeethSegmentationLib import __version__
from TeethSegmentationLib.errors import Cancelled, InputError
from TeethSegmentationLib.events import NullReporter, Reporter, jsonable
from TeethSegmentationLib.fdi import NUM_CLASSES, NUM_CLASSES_MIXED
from TeethSegmentationLib.inference.stages import TYPES_MARGIN_MM
from TeethSegmentationLib.nets.contacts_head import contacts_from_types
from TeethSegmentationLib.nets.devices import describe_device, resolve_device, resolve_precision
from TeethSegmentationLib.nets.mixed_head import widen_to_mixed
from TeethSegmentationLib.nets.model_file import TeethModel, load_model, new_model, save_model
from TeethSegmentationLib.training import distributed as ddp
from TeethSegmentationLib.training import resume
from TeethSegmentationLib.training.augment import augment_params
from TeethSegmentationLib.training.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from TeethSegmentationLib.training.config import FINE_STAGES, TrainConfig, check_config, summary_settings
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
from TeethSegmentationLib.training.steps import (
    DivergenceGuard,
    check_step_fits,
    make_optimizer,
    scheduled_lr,
    split_cases,
    train_step,
    training_layout,
)
from TeethSegmentationLib.training.validation import validation_dice

DEBUG_RANK_DIR_ENV = "TEETHSEG_DEBUG_RANK_DIR"  # tests: every rank dumps its final weights there


class Trainer:
    """Holds the run's state; ``run()`` calls the hooks in order. Stages are named "teeth", "types" and
    "contacts" (config.STAGES)."""

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
        self._data: dict[str, tuple[list[PreparedCase], list[PreparedCase]]] = {}
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
            self.config = resume.merge_config(self._resumed["config"], self.config, self.reporter)
        check_config(self.config)
        cfg = self.config
        self.device = ddp.setup(self.ctx, resolve_device(cfg.device))
        self.amp = self.device.type == "cuda"
        self.cpu_dtype = resolve_precision(cfg.precision, self.device) if self.device.type == "cpu" else torch.float32
        self.guard = DivergenceGuard(self.amp)
        self.model = self._build_model()
        self.stages = list(cfg.stages)
        for stage in self.stages:
            check_step_fits(cfg.batch, self._patch(stage), self.net(stage).config["start_filters"], self.device)
        self.cases = self._find_cases()
        self.train_cases, self.val_cases = split_cases(self.cases, cfg.val_fraction, cfg.seed)
        self.total_epochs = cfg.epochs * len(self.stages)
        layout = training_layout(self.device, self.cpu_dtype)
        self.nets = {s: self.net(s).to(self.device, memory_format=layout) for s in self.stages}
        self.wrapped = {s: ddp.wrap(net, self.ctx, self.device) for s, net in self.nets.items()}
        self.optimizers = {s: make_optimizer(cfg.optimizer, net.parameters(), cfg.lr) for s, net in self.nets.items()}
        self.scalers = {s: torch.amp.GradScaler(self.device.type, enabled=self.amp) for s in self.stages}
        if self._resumed is not None:
            resume.restore(self, self._resumed)
        self.started = time.monotonic()
        self.reporter.log(
            f"training {' and '.join(self.stages)} on {describe_device(self.device)}"
            f"{' in bfloat16' if self.cpu_dtype == torch.bfloat16 else ''}"
            f"{f' x {self.ctx.world_size} processes' if self.ctx.enabled else ''}: {len(self.train_cases)} "
            f"training and {len(self.val_cases)} validation cases"
        )

    def run_epoch(self) -> None:
        self.check_stop()
        stage, cfg = self.current_stage, self.config
        train_cases, _ = self.stage_data(stage)
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
                self.wrapped[stage], self.optimizers[stage], self.scalers[stage], images, targets, cfg.cross_entropy,
                self.cpu_dtype,
            )
            self.guard.check_loss(loss, stage)
            self.step += 1
            self.loss_sum += loss
            self.on_step_end(stage, loss)
        self.guard.check_weights(self.nets[stage], stage)
        self.on_epoch_end(stage, time.monotonic() - start)

    def on_step_end(self, stage: str, loss: float) -> None:
        cfg = self.config
        done = self.epoch * cfg.steps_per_epoch + self.step
        self.reporter.progress(
            f"train {stage}",
            done / (self.total_epochs * cfg.steps_per_epoch),
            f"epoch {self.stage_epoch + 1}/{cfg.epochs} step {self.step}/{cfg.steps_per_epoch} loss {loss:.4f}",
        )

    def on_epoch_end(self, stage: str, seconds: float) -> None:
        cfg = self.config
        loss = ddp.mean_across_ranks(self.loss_sum / max(1, cfg.steps_per_epoch), self.ctx, self.device)
        stage_epoch = self.stage_epoch + 1
        self.epoch += 1
        self.step, self.loss_sum = 0, 0.0
        self.epoch_seconds.append(seconds)
        val = self.validate(stage)
        self.history.append({"stage": stage, "epoch": stage_epoch, "loss": loss, "val_dice": val, "seconds": seconds})
        if val and not math.isnan(val["mean"]):
            self.remember_if_best(stage, val["mean"])
        eta = float(np.mean(self.epoch_seconds)) * (self.total_epochs - self.epoch)
        self.reporter.progress(
            f"train {stage}",
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
            self._data.pop(stage, None)  # the teeth stage's data is not needed any more
            if self.current_stage == "contacts" and "types" in self.best_weights:
                # The branch learns on the types network that the model file will hold: its best weights.
                self.nets["types"].load_state_dict(self.best_weights["types"])

    def remember_if_best(self, stage: str, score: float) -> None:
        """Keep a copy of the weights at the best validation Dice: the model file gets those, not the last."""
        if score > self.best.get(stage, -1.0):
            self.best[stage] = score
            self.best_weights[stage] = {k: v.detach().cpu().clone() for k, v in self.nets[stage].state_dict().items()}

    def restore_best(self) -> None:
        for stage, net in self.nets.items():
            weights = self.best_weights.get(stage)
            if weights is not None:
                net.load_state_dict(weights)
                self.reporter.log(f"{stage}: keeping the weights of the best validation Dice")

    def validate(self, stage: str) -> dict[str, float]:
        _, val_cases = self.stage_data(stage)
        if not val_cases or not self.ctx.is_main:
            ddp.barrier(self.ctx)
            return {}
        margin = self.types_margin() if stage in FINE_STAGES else None
        scores = validation_dice(self.model, val_cases, stage, self.device, margin)
        # The predictor's layout may differ from training's.
        self.nets[stage].to(self.device, memory_format=training_layout(self.device, self.cpu_dtype))
        self.val_dice[stage] = scores
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

    def net(self, stage: str) -> torch.nn.Module:
        return getattr(self.model, f"{stage}_net")

    @property
    def current_stage(self) -> str:
        return self.stages[min(self.epoch // self.config.epochs, len(self.stages) - 1)]

    @property
    def stage_epoch(self) -> int:
        return self.epoch % self.config.epochs

    def teeth_channel(self, stage: str) -> bool:
        return stage in FINE_STAGES and self.model.types_input == "image+teeth"

    def sampling_params(self, stage: str) -> SamplingParams:
        return SamplingParams(
            patch=self._patch(stage),
            foreground_fraction=self.config.foreground_fraction,
            augment=augment_params(self.config.augment, self.config.scanner_augment, self.config.artefact_augment),
            teeth_channel=self.teeth_channel(stage),
            background_margin=self.types_margin() if stage in FINE_STAGES else None,
            classes=self.model.num_classes,
            primary_incisor_share=self.config.primary_incisor_share if stage == "types" else 0.0,
            spacing_mm=self.model.teeth_spacing_mm if stage == "teeth" else self.model.spacing_mm,
        )

    def types_margin(self) -> int:
        """The types stage's context margin in voxels of its grid."""
        return int(round(TYPES_MARGIN_MM / self.model.spacing_mm))

    def _patch(self, stage: str) -> int:
        divisor = self.net(stage).divisor
        return int(math.ceil(self.config.patch / divisor) * divisor)

    def stage_data(self, stage: str) -> tuple[list[PreparedCase], list[PreparedCase]]:
        if stage not in self._data:
            cfg = self.config
            spacing = self.model.teeth_spacing_mm if stage == "teeth" else self.model.spacing_mm
            args = (spacing, self.model.normalization, cfg.label_kind, cfg.label_table, self.reporter)
            # One call for both: with workers, one process pool (each pool's processes import the engine again).
            both = prepare_cases(self.train_cases + self.val_cases, *args, stage_name=f"prepare {stage}",
                                 processes=cfg.workers)
            train, val = both[: len(self.train_cases)], both[len(self.train_cases) :]
            if stage in FINE_STAGES:
                for case in train + val:  # binary labels cannot train types, nor type labels contacts
                    stage_target(case.labels[:1, :1, :1], case.kind, stage)
            self._data[stage] = (train, val)
        return self._data[stage]

    def _find_cases(self) -> list[Case]:
        cfg = self.config
        if cfg.data_dir and cfg.images:
            raise InputError("Give either --data or --images/--labels, not both.")
        return find_cases(cfg.data_dir) if cfg.data_dir else cases_from_paths(list(cfg.images), list(cfg.labels))

    def _build_model(self) -> TeethModel:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        if cfg.init:
            model = load_model(cfg.init)
            model.training = dict(model.training)
            if "types" in cfg.stages and cfg.types_input != model.types_input:
                self.reporter.log(f"the types network keeps the init model's input {model.types_input!r}", "warning")
            if "types" in cfg.stages and int(cfg.types_classes) != model.num_classes:
                model = self._widen_or_keep(model, int(cfg.types_classes))
        else:
            model = new_model(
                types_input=cfg.types_input,
                teeth_arch=None if cfg.filters_teeth is None else {"start_filters": cfg.filters_teeth},
                types_arch={
                    "out_channels": int(cfg.types_classes),
                    **({} if cfg.filters_types is None else {"start_filters": cfg.filters_types}),
                },
            )
        if model.teeth_net is None:
            model.teeth_net = new_model().teeth_net
        if model.types_net is None:
            model.types_net = new_model(
                types_input=model.types_input, types_arch={"out_channels": int(cfg.types_classes)}
            ).types_net
        self._fit_contacts(model, cfg.stages)
        if cfg.teeth_spacing_mm is not None:
            model.teeth_spacing_mm = float(cfg.teeth_spacing_mm)
        if cfg.spacing_mm is not None:
            model.spacing_mm = float(cfg.spacing_mm)
        return model

    def _fit_contacts(self, model: TeethModel, stages: list[str]) -> None:
        """The contacts branch reads the types network: attached to the one this run uses, new when asked for,
        and dropped when this run changes the types network without training the branch again."""
        if model.contacts_net is not None and "types" in stages and "contacts" not in stages:
            model.contacts_net = None
            self.reporter.log("the contacts branch is left out: it reads the types network, which this run changes "
                              "(train --stages types contacts to keep one)", "warning")
        if "contacts" in stages and model.contacts_net is None:
            model.contacts_net = contacts_from_types(model.types_net)
            self.reporter.log("the contacts branch starts from the types network's last up block")
        if model.contacts_net is not None:
            model.contacts_net.attach(model.types_net)

    def _widen_or_keep(self, model: TeethModel, classes: int) -> TeethModel:
        """A 9-class init model asked for 14 classes gets its types network widened (nets.mixed_head);
        any other change of class count keeps the init model's classes."""
        if (model.num_classes, classes) == (NUM_CLASSES, NUM_CLASSES_MIXED) and model.types_net is not None:
            model.types_net = widen_to_mixed(model.types_net)
            self.reporter.log("the 9-class types network is widened to 14 classes (primary types start as copies)")
        else:
            self.reporter.log(f"the types network keeps the init model's {model.num_classes} classes", "warning")
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

    # -- results

    def save_checkpoint(self) -> None:
        if self.ctx.is_main:
            save_checkpoint(checkpoint_path(self.config.output), resume.checkpoint_state(self))

    def summary(self) -> dict[str, Any]:
        cfg = self.config
        return jsonable(
            {
                **summary_settings(cfg),
                "output": str(Path(cfg.output)),
                "checkpoint": str(checkpoint_path(cfg.output)),
                "stages_trained": list(self.stages),
                "cases": len(self.cases),
                "train_cases": [c.name for c in self.train_cases],
                "validation_cases": [c.name for c in self.val_cases],
                "final_loss": {r["stage"]: r["loss"] for r in self.history},
                "val_dice": self.val_dice,
                "best_val_dice": self.best,
                "history": self.history,
                "seconds": round(time.monotonic() - self.started, 2),
                "device": describe_device(self.device),
                "world_size": self.ctx.world_size,
                "software_version": __version__,
                "torch_version": str(torch.__version__),
            }
        )

    def _debug_dump(self) -> None:
        folder = os.environ.get(DEBUG_RANK_DIR_ENV)
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            state = {f"{s}.{k}": v.detach().cpu() for s, net in self.nets.items() for k, v in net.state_dict().items()}
            torch.save({"state": state, "history": self.history}, Path(folder) / f"rank{self.ctx.rank}.pt")


def train(config: TrainConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Train, write ``config.output`` (model file) and ``<output>.ckpt``; the training summary."""
    return Trainer(config, reporter).run()
