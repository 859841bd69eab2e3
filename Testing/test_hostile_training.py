"""`teethseg train` given careless, unlucky or hostile settings: each row is exit code, one sentence, nothing left.

Every row runs the real command line on real tiny cases, so a bad setting cannot hide behind a data error.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
from pathlib import Path

import nrrd
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _train_phantoms import one_torch_thread, write_cases  # noqa: E402, F401 (a fixture)

from TeethSegmentationLib import cli  # noqa: E402
from TeethSegmentationLib.nets.model_file import load_model  # noqa: E402
from TeethSegmentationLib.training.config import TYPES_INPUTS, TrainConfig, check_config  # noqa: E402

FAST = ["--epochs", "1", "--steps-per-epoch", "2", "--patch", "16", "--batch", "2", "--filters-teeth", "4",
        "--filters-types", "4", "--teeth-spacing", "1.5", "--spacing", "1.5", "--device", "cpu", "--no-augment"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile_train_data")
    write_cases(folder, 2)
    return folder


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _nan_labels(data: Path) -> list[str]:
    labels, header = nrrd.read(str(data / "case00.labels.nrrd"))
    labels = labels.astype(np.float32)
    labels[0, 0, 0] = np.nan
    nrrd.write(str(data / "case00.labels.nrrd"), labels, header)
    return []


def _huge_table_key(data: Path) -> list[str]:
    (data / "table.json").write_text(json.dumps({"100000000000000000000": 11, "1": 12}))
    return ["--label-table", str(data / "table.json")]


def _float_table_key(data: Path) -> list[str]:
    (data / "table.json").write_text(json.dumps({"1e20": 11}))
    return ["--label-table", str(data / "table.json")]


# (id, extra flags, code, part of the sentence); a callable prepares the data and returns flags.
ROWS = [
    ("lr-inf", ["--lr", "inf"], 2, "--lr must be a finite number"),
    ("lr-nan", ["--lr", "nan"], 2, "--lr must be a finite number"),
    ("lr-zero", ["--lr", "0"], 2, "--lr must be above 0"),
    ("lr-1e30", ["--lr", "1e30"], 1, "diverged"),
    ("patch-1", ["--patch", "1"], 2, "--patch must be at least 16"),
    ("patch-4000", ["--patch", "4000"], 2, "--patch must be at most 512"),
    ("batch-100000", ["--batch", "100000"], 2, "--batch must be at most 1024"),
    ("batch-1024-patch-256", ["--batch", "1024", "--patch", "256"], 2, "use a smaller --batch or --patch"),
    ("patch-512-batch-64", ["--patch", "512", "--batch", "64"], 2, "use a smaller --batch or --patch"),
    ("workers-negative", ["--workers", "-1"], 2, "--workers must be at least 0"),
    ("teeth-spacing-negative", ["--teeth-spacing", "-1"], 2, "--teeth-spacing must be at least 0.25"),
    ("spacing-tiny", ["--spacing", "0.001"], 2, "--spacing must be at least 0.1"),
    ("spacing-zero", ["--spacing", "0"], 2, "--spacing must be at least 0.1"),
    ("filters-types-negative", ["--filters-types", "-2"], 2, "--filters-types must be at least 2"),
    ("filters-teeth-zero", ["--filters-teeth", "0"], 2, "--filters-teeth must be at least 2"),
    ("epochs-zero", ["--epochs", "0"], 2, "--epochs must be at least 1"),
    ("val-fraction-one", ["--val-fraction", "1"], 2, "--val-fraction must be below 1"),
    ("seed-negative", ["--seed", "-3"], 2, "--seed must be at least 0"),
    ("output-folder", "output-folder", 2, "is a folder"),
    ("output-empty", "output-empty", 2, "Give --output"),
    ("nan-labels", _nan_labels, 2, "NaN or infinite values"),
    ("json-key-huge", _huge_table_key, 2, "a value no label map holds"),
    ("json-key-float", _float_table_key, 2, "is not a JSON object of label value to FDI number"),
]


@pytest.mark.parametrize("extra, code, words", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_hostile_training_settings(source, tmp_path, capsys, extra, code, words):
    data = tmp_path / "data"
    shutil.copytree(source, data)
    output = tmp_path / "out" / "m.pt"
    if extra == "output-folder":
        output.mkdir(parents=True)
        extra = []
    elif extra == "output-empty":
        output, extra = Path(""), []
    elif callable(extra):
        extra = extra(data)
    before = _files(tmp_path)
    argv = ["train", "--data", str(data), "--output", str(output) if str(output) != "." else "", "--events"]
    result = cli.main([*argv, *FAST, *extra])
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    message = records[-1]["message"]
    assert result == code and records[-1]["event"] == "error", records[-1]
    assert words in message and "\n" not in message and message.endswith(".")
    assert not re.search(r"\.\s+[A-Z]", message), f"more than one sentence: {message}"
    assert "Traceback" not in captured.err
    assert _files(tmp_path) == before, "the failed run left files behind"


def test_resume_writes_only_where_the_command_line_says(source, tmp_path, capsys):
    first = tmp_path / "first" / "m.pt"
    argv = ["train", "--data", str(source), "--output", str(first), "--stages", "teeth", *FAST]
    assert cli.main(argv) == 0
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(str(first) + ".ckpt", moved / "m.pt.ckpt")
    before = {p: p.stat().st_mtime_ns for p in first.parent.iterdir()}
    assert cli.main(["train", "--resume", str(moved / "m.pt.ckpt"), "--epochs", "2", "--device", "cpu"]) == 0
    assert {p: p.stat().st_mtime_ns for p in first.parent.iterdir()} == before  # the stored output is untouched
    assert sorted(p.name for p in moved.iterdir()) == ["m.pt", "m.pt.ckpt"]
    assert load_model(moved / "m.pt").training["epochs"] == 2
    elsewhere = tmp_path / "elsewhere" / "n.pt"
    assert cli.main(["train", "--resume", str(moved / "m.pt.ckpt"), "--epochs", "3", "--output", str(elsewhere)]) == 0
    assert sorted(p.name for p in elsewhere.parent.iterdir()) == ["n.pt", "n.pt.ckpt"]
    capsys.readouterr()


def test_every_declared_range_is_checked_and_choices_match_the_model_file():
    from TeethSegmentationLib.nets.model_file import TYPES_INPUTS as MODEL_TYPES_INPUTS

    assert TYPES_INPUTS == MODEL_TYPES_INPUTS
    check_config(TrainConfig(output="m.pt"))  # the defaults are valid
    for name, value in (("patch", 15), ("batch", 0), ("lr", -1.0), ("foreground_fraction", 1.5), ("stages", ["x"])):
        with pytest.raises(Exception, match=name.replace("_", "-") if name != "foreground_fraction" else name):
            check_config(TrainConfig(output="m.pt", **{name: value}))
    assert math.isclose(TrainConfig().lr, 2e-3) and TrainConfig().patch == 48 and TrainConfig().batch == 4
