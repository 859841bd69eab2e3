"""Training: the architectures, learning on a tiny phantom, exact resume, cancel, model files, the CLI."""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _train_phantoms import one_torch_thread, write_cases  # noqa: E402, F401 (a fixture)

from TeethSegmentationLib import cli  # noqa: E402
from TeethSegmentationLib.errors import Cancelled, InputError  # noqa: E402
from TeethSegmentationLib.nets.contacts_head import contacts_from_types  # noqa: E402
from TeethSegmentationLib.nets.model_file import (  # noqa: E402
    DEFAULT_MODEL_PATH,
    MODEL_FORMAT_VERSION,
    load_model,
    model_to_dict,
    new_model,
    read_model_dict,
    save_model,
)
from TeethSegmentationLib.nets.unet import UNet, count_parameters  # noqa: E402
from TeethSegmentationLib.training import dataset
from TeethSegmentationLib.training.augment import NO_AUGMENTATION  # noqa: E402
from TeethSegmentationLib.training.checkpoint import checkpoint_path, load_checkpoint  # noqa: E402
from TeethSegmentationLib.training.config import TrainConfig  # noqa: E402
from TeethSegmentationLib.training.losses import stage_loss  # noqa: E402
from TeethSegmentationLib.training.steps import make_optimizer, train_step  # noqa: E402
from TeethSegmentationLib.training.trainer import train  # noqa: E402
from TeethSegmentationLib.training.validation import validation_dice  # noqa: E402

# Tiny phantoms are ~47x61x42 voxels of 1.5 mm: train teeth at 1.5 mm and types at 1 mm to stay fast.
TINY = dict(
    epochs=2,
    steps_per_epoch=2,
    patch=24,
    batch=2,
    filters_teeth=4,
    filters_types=4,
    device="cpu",
    teeth_spacing_mm=1.5,
    spacing_mm=1.0,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train_data")
    write_cases(folder, 3)
    return folder


@pytest.fixture(scope="module")
def cases(data_dir) -> list[dataset.PreparedCase]:
    found = dataset.find_cases(data_dir)
    return [dataset.prepare_case(c, 1.5) for c in found]


def _state(path: Path) -> dict[str, torch.Tensor]:
    model = load_model(path)
    return {
        f"{name}.{k}": v for name in ("teeth", "types") for k, v in getattr(model, f"{name}_net").state_dict().items()
    }


def _batch(ds: dataset.PatchDataset, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    items = [ds[start], ds[start + 1]]
    return torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items])


class _CancelAt:
    """A reporter that cancels like the Cancel button when a given event arrives."""

    def __init__(self, epoch: int | None = None, message: str | None = None) -> None:
        self.epoch, self.message, self.events = epoch, message, []

    def progress(self, stage, fraction, message="", **extra):
        self.events.append((stage, fraction, message, extra))
        if (self.epoch is not None and extra.get("epoch") == self.epoch and stage == "train teeth") or (
            self.message is not None and message.startswith(self.message)
        ):
            raise Cancelled("cancel button")

    def log(self, message, level="info"):
        pass


def test_poly_learning_rate_decays_per_epoch_and_constant_stays():
    from TeethSegmentationLib.training.steps import scheduled_lr

    rates = [scheduled_lr(1e-3, "poly", e, 10) for e in range(10)]
    assert rates[0] == 1e-3 and all(np.diff(rates) < 0) and 0 < rates[-1] < 2e-4
    assert scheduled_lr(1e-3, "constant", 7, 10) == 1e-3 and scheduled_lr(1e-3, "poly", 0, 1) == 1e-3


def test_the_architectures_have_the_published_parameter_counts():
    assert new_model().teeth_net.config["start_filters"] == 9 == load_model(DEFAULT_MODEL_PATH).teeth_net.config[
        "start_filters"
    ]  # the shipped model, the README and the defaults agree
    assert count_parameters(UNet(1, 1, n_blocks=3, start_filters=9)) == 107_902
    assert count_parameters(UNet(1, 1, n_blocks=3, start_filters=18)) == 429_967
    assert count_parameters(UNet(1, 9, n_blocks=3, start_filters=9)) == 107_982


@pytest.mark.parametrize(("optimizer", "cpu_dtype"), [("adam", torch.float32), ("rmsprop", torch.float32),
                                                      ("adam", torch.bfloat16)])
def test_one_step_lowers_the_loss_on_the_same_batch(cases, optimizer, cpu_dtype):
    torch.manual_seed(0)
    net = UNet(1, 9, 3, 4)
    ds = dataset.PatchDataset(cases[:1], dataset.SamplingParams(patch=24, augment=NO_AUGMENTATION), 2, 2, seed=1)
    images, targets = _batch(ds, 0)
    opt = make_optimizer(optimizer, net.parameters(), 1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    before = train_step(net, opt, scaler, images, targets, with_ce=True, cpu_dtype=cpu_dtype)
    assert all(p.dtype == torch.float32 for p in net.parameters())  # bf16 autocast keeps float32 weights
    with torch.no_grad():
        after = float(stage_loss(net(images), targets, with_ce=True))
    assert after < before


def test_a_few_dozen_steps_find_the_teeth_well_above_chance(cases):
    """Stage 1 at 1.5 mm, 60 steps of 4 patches: measured Dice 0.59-0.66 (3 seeds) held out; chance ~0.04."""
    torch.manual_seed(0)
    net = UNet(1, 1, 3, 4)
    opt = make_optimizer("adam", net.parameters(), 3e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    ds = dataset.PatchDataset(cases[:2], dataset.SamplingParams(patch=32, augment=NO_AUGMENTATION), 1, 240, seed=0)
    for step in range(60):
        items = [ds[4 * step + i] for i in range(4)]
        train_step(net, opt, scaler, torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items]), True)
    chance = float(np.mean(cases[2].labels > 0))
    model = new_model(teeth_arch={"start_filters": 4})
    model.teeth_net = net
    dice = validation_dice(model, cases[2:], "teeth", torch.device("cpu"))["teeth"]
    assert chance < 0.1 and dice > 0.3


@pytest.fixture(scope="module")
def straight_run(data_dir, tmp_path_factory) -> tuple[TrainConfig, dict]:
    out = tmp_path_factory.mktemp("straight") / "model.pt"
    config = TrainConfig(output=str(out), data_dir=str(data_dir), seed=5, **TINY)
    return config, train(config)


@pytest.mark.parametrize(
    "cancel", [_CancelAt(epoch=1), _CancelAt(message="epoch 2/2 step 1/2")], ids=["epoch-end", "mid-epoch"]
)
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(straight_run, tmp_path, cancel):
    config, summary = straight_run
    out = tmp_path / "model.pt"
    first = replace(config, output=str(out))
    with pytest.raises(Cancelled):
        train(first, cancel)
    ckpt = checkpoint_path(out)
    assert ckpt.is_file() and not out.exists()
    resumed = train(replace(first, resume=str(ckpt)))
    straight, again = _state(Path(config.output)), _state(out)
    assert straight.keys() == again.keys()
    for key in straight:
        assert torch.allclose(straight[key].float(), again[key].float(), atol=1e-6), key
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in summary["history"]])


def test_checkpoints_with_numbered_stages_still_resume(straight_run, tmp_path):
    """Checkpoints written before stages had names: config "stage": "both", optimisers keyed "1"/"2"."""
    config, summary = straight_run
    state = load_checkpoint(checkpoint_path(config.output))
    state["config"] = {**{k: v for k, v in state["config"].items() if k != "stages"}, "stage": "both"}
    for kind in ("optimizers", "scalers"):
        state[kind] = {{"teeth": "1", "types": "2"}[k]: v for k, v in state[kind].items()}
    state["history"] = [{**r, "stage": {"teeth": 1, "types": 2}[r["stage"]]} for r in state["history"]]
    old = tmp_path / "old.pt.ckpt"
    torch.save(state, old)
    resumed = train(TrainConfig(output=str(tmp_path / "old.pt"), resume=str(old), epochs=config.epochs))
    assert resumed["stages_trained"] == ["teeth", "types"] and resumed["history"][-1]["stage"] == "types"
    assert resumed["final_loss"] == pytest.approx(summary["final_loss"])


def test_the_straight_run_writes_model_checkpoint_and_summary(straight_run):
    config, summary = straight_run
    model = load_model(config.output)
    assert summary["stages_trained"] == ["teeth", "types"] == model.training["stages_trained"]
    assert summary["cases"] == 3 and len(summary["validation_cases"]) == 1
    assert set(summary["val_dice"]["types"]) == {str(t) for t in range(1, 9)} | {"mean"}
    assert model.teeth_net.config["start_filters"] == 4 and model.types_net.config["out_channels"] == 9
    state = load_checkpoint(checkpoint_path(config.output))  # weights_only=True inside
    assert state["epoch"] == 4 and state["step"] == 0 and set(state["optimizers"]) == {"teeth", "types"}


def test_sigterm_saves_a_checkpoint_and_cancels(data_dir, tmp_path):
    class Kill(_CancelAt):
        def progress(self, stage, fraction, message="", **extra):
            if message.startswith("epoch 1/2 step 1/"):
                os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "m.pt"
    with pytest.raises(Cancelled, match="SIGTERM"):
        train(TrainConfig(output=str(out), data_dir=str(data_dir), stages=["teeth"], **TINY), Kill())
    assert load_checkpoint(checkpoint_path(out))["step"] == 1
    assert signal.getsignal(signal.SIGTERM) is previous


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_fine_tuning_stage_2_keeps_the_init_stage_1(data_dir, tmp_path, precision):
    base = new_model(types_input="image+teeth", teeth_arch={"start_filters": 4}, types_arch={"start_filters": 4})
    base.training = {"note": "base"}
    save_model(base, tmp_path / "base.pt")
    out = tmp_path / "tuned.pt"
    summary = train(
        TrainConfig(
            output=str(out),
            data_dir=str(data_dir),
            stages=["types"],
            init=str(tmp_path / "base.pt"),
            precision=precision,
            **{**TINY, "epochs": 1},
        )
    )
    tuned = load_model(out)
    assert summary["stages_trained"] == ["types"] and tuned.types_input == "image+teeth"
    assert tuned.types_net.config["in_channels"] == 2 and tuned.training["previous"] == {"note": "base"}
    for k, v in base.teeth_net.state_dict().items():
        assert torch.equal(v, tuned.teeth_net.state_dict()[k])
    assert not all(torch.equal(v, tuned.types_net.state_dict()[k]) for k, v in base.types_net.state_dict().items())


def test_a_nine_class_init_widens_to_fourteen_classes(data_dir, tmp_path):
    base = new_model(teeth_arch={"start_filters": 4}, types_arch={"start_filters": 4})
    save_model(base, tmp_path / "base.pt")
    out = tmp_path / "mixed.pt"
    config = TrainConfig(
        output=str(out), data_dir=str(data_dir), stages=["types"], init=str(tmp_path / "base.pt"),
        types_classes="14", **{**TINY, "epochs": 1},
    )
    train(config)
    tuned = load_model(out)
    assert tuned.num_classes == 14 and tuned.types_net.config["out_channels"] == 14


@pytest.mark.parametrize("types_input", ["image", "image+teeth"])
def test_the_contacts_stage_trains_a_branch_on_the_types_trunk_and_keeps_both_stages(data_dir, tmp_path, types_input):
    """--stages contacts: a contacts branch starts from the init model's types network (its last up block, on its
    trunk and input), is trained and validated on FDI labels, and the model file carries it beside the unchanged
    stages 1 and 2 (batch-norm statistics included: the trunk runs in eval mode)."""
    base = new_model(
        types_input=types_input, spacing_mm=1.0, teeth_spacing_mm=1.5, teeth_arch={"start_filters": 4},
        types_arch={"start_filters": 4},
    )
    save_model(base, tmp_path / "base.pt")
    out = tmp_path / "contacts.pt"
    summary = train(
        TrainConfig(output=str(out), data_dir=str(data_dir), stages=["contacts"], init=str(tmp_path / "base.pt"),
                    **{**TINY, "epochs": 1})
    )
    tuned = load_model(out)
    assert summary["stages_trained"] == ["contacts"] and set(summary["val_dice"]["contacts"]) == {"contacts", "mean"}
    assert tuned.contacts_net.config == {"kind": "types_branch", "start_filters": 4, "out_channels": 1}
    assert tuned.contacts_net.trunk is tuned.types_net
    for name in ("teeth", "types"):
        before, after = getattr(base, f"{name}_net").state_dict(), getattr(tuned, f"{name}_net").state_dict()
        assert all(torch.equal(v, after[k]) for k, v in before.items())
    started = contacts_from_types(base.types_net).state_dict()
    assert not all(torch.equal(v, tuned.contacts_net.state_dict()[k]) for k, v in started.items())
    assert set(load_checkpoint(checkpoint_path(out))["nets"]) == {"teeth", "types", "contacts"}


def test_a_run_that_changes_the_types_network_leaves_out_a_branch_it_does_not_train(data_dir, tmp_path):
    base = new_model(spacing_mm=1.0, teeth_spacing_mm=1.5, teeth_arch={"start_filters": 4},
                     types_arch={"start_filters": 4})
    base.contacts_net = contacts_from_types(base.types_net)
    save_model(base, tmp_path / "base.pt")
    out = tmp_path / "types.pt"
    train(TrainConfig(output=str(out), data_dir=str(data_dir), stages=["types"], init=str(tmp_path / "base.pt"),
                      **{**TINY, "epochs": 1}))
    assert load_model(out).contacts_net is None  # a branch for the old trunk would mislead the instance step
    with pytest.raises(InputError, match="after the types network"):
        train(TrainConfig(output=str(tmp_path / "x.pt"), data_dir=str(data_dir), stages=["contacts", "types"], **TINY))


def test_a_contacts_run_resumes_to_the_same_weights(data_dir, tmp_path):
    config = TrainConfig(output=str(tmp_path / "a.pt"), data_dir=str(data_dir), stages=["contacts"], seed=3, **TINY)
    train(config)
    cut = replace(config, output=str(tmp_path / "b.pt"))
    with pytest.raises(Cancelled):
        train(cut, _CancelAt(message="epoch 2/2 step 1/2"))
    train(replace(cut, resume=str(checkpoint_path(cut.output))))
    straight, again = load_model(config.output).contacts_net.state_dict(), load_model(cut.output).contacts_net
    for key, value in straight.items():
        assert torch.allclose(value.float(), again.state_dict()[key].float(), atol=1e-6), key


def test_widened_head_keeps_permanent_logits_and_copies_them_for_primary_types():
    from TeethSegmentationLib.nets.mixed_head import PRIMARY_BIAS_OFFSET, widen_to_mixed

    torch.manual_seed(0)
    net = new_model(types_arch={"start_filters": 4}).types_net.eval()
    wide = widen_to_mixed(net).eval()
    x = torch.rand(1, 1, 8, 8, 8)
    with torch.no_grad():
        narrow_logits, wide_logits = net(x), wide(x)
    torch.testing.assert_close(wide_logits[:, :9], narrow_logits)
    torch.testing.assert_close(wide_logits[:, 9:], narrow_logits[:, 1:6] + PRIMARY_BIAS_OFFSET)
    assert net.config["out_channels"] == 9 and net.head.out_channels == 9  # the source is not changed
    with pytest.raises(ValueError, match="9-class"):
        widen_to_mixed(wide)


def test_foreign_damaged_and_newer_model_files_are_refused(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(InputError, match="cannot be read"):
        load_model(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}, "epoch": 4}, foreign)
    with pytest.raises(InputError, match="not a TeethSegmentation model"):
        load_model(foreign)
    newer = tmp_path / "newer.pt"
    torch.save({**model_to_dict(new_model()), "format_version": MODEL_FORMAT_VERSION + 1}, newer)
    with pytest.raises(InputError, match="newer"):
        read_model_dict(newer)
    with pytest.raises(InputError, match="not a TeethSegmentation training checkpoint"):
        load_checkpoint(foreign)


def test_cli_train_writes_a_loadable_model_and_only_json_lines(data_dir, tmp_path, capsys):
    images = [str(p) for p in sorted(data_dir.glob("case0[01].nrrd"))]
    labels = [p.replace(".nrrd", ".labels.nrrd") for p in images]
    out = tmp_path / "cli.pt"
    argv = [
        "train",
        "--images",
        *images,
        "--labels",
        *labels,
        "--output",
        str(out),
        "--events",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--patch",
        "24",
        "--filters-teeth",
        "4",
        "--filters-types",
        "4",
        "--device",
        "cpu",
        "--val-fraction",
        "0.5",
    ]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["event"] == "start" and records[-1]["event"] == "result"
    assert records[-1]["status"] == "ok" and records[-1]["stages_trained"] == ["teeth", "types"]
    epochs = [r for r in records if r["event"] == "progress" and "epoch" in r]
    assert epochs and {"loss", "val_dice", "seconds_per_epoch", "eta_seconds", "epochs"} <= set(epochs[0])
    training = load_model(out).training
    assert training["cases"] == 2 and len(training["train_cases"]) == 1 and training["stages_trained"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--images", "a.nrrd", "b.nrrd", "--labels", "a.labels.nrrd"], "2 images but 1"),
        (["--images", "missing.nrrd", "--labels", "missing.labels.nrrd"], "does not exist"),
        ([], "No training data"),
        (["--data", "nowhere"], "does not exist"),
    ],
)
def test_cli_train_bad_input_is_one_sentence_and_exit_code_2(tmp_path, capsys, extra, message):
    code = cli.main(["train", "--output", str(tmp_path / "m.pt"), "--events", *extra])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 2 and records[-1]["event"] == "error" and message in records[-1]["message"]


def test_the_model_file_keeps_the_best_validation_weights(straight_run):
    config, summary = straight_run
    history = [h for h in summary["history"] if h["stage"] == "types" and h["val_dice"]]
    assert history, "the straight run validates every epoch"
    best = max(h["val_dice"]["mean"] for h in history)
    assert summary["best_val_dice"]["types"] == pytest.approx(best)
    kept = load_checkpoint(checkpoint_path(config.output))["best_weights"]["types"]
    saved = load_model(config.output).types_net.state_dict()
    assert all(torch.equal(saved[k], kept[k]) for k in kept)


def test_the_training_precisions_are_the_networks_ones():
    """training.config spells out nets.devices.PRECISIONS (importing it would import torch for --help)."""
    from TeethSegmentationLib.nets.devices import PRECISIONS
    from TeethSegmentationLib.training import config

    assert config.PRECISIONS == PRECISIONS


def test_the_optimisers_imports_can_be_made_aside():
    """Fine-tuning imports what torch's first optimiser needs in a thread while it reads the cases."""
    import sys

    from TeethSegmentationLib.training.steps import import_optimizer_support_aside

    thread = import_optimizer_support_aside()
    thread.join(120)
    assert not thread.is_alive() and "torch._dynamo" in sys.modules


def test_training_layout_is_channels_last_for_float32_on_the_cpu_only():
    """Channels-last speeds float32 steps on the CPU, but bf16 batch norm's backward pass is slow in it."""
    from TeethSegmentationLib.training.steps import training_layout

    cpu = torch.device("cpu")
    assert training_layout(cpu) == training_layout(cpu, torch.float32) == torch.channels_last_3d
    assert training_layout(cpu, torch.bfloat16) == torch.contiguous_format
    assert training_layout(torch.device("cuda")) == torch.contiguous_format


def test_boolean_options_get_the_flag_that_changes_them():
    """On by default: --no-NAME turns it off; off by default (the artefact augmentation): --NAME turns it on; unset
    flags stay None, so that --resume keeps the checkpoint's value."""
    import argparse

    from TeethSegmentationLib.commands import train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    given = parser.parse_args(["--artefact-augment", "--no-scanner-augment"])
    assert given.artefact_augment is True and given.scanner_augment is False
    unset = parser.parse_args([])
    assert unset.artefact_augment is None and unset.scanner_augment is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--no-artefact-augment"])
