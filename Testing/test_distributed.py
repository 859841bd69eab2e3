"""Two-process training with torch.distributed (gloo on the CPU), launched like a user would: torchrun."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _train_phantoms import write_cases  # noqa: E402

from TeethSegmentationLib.nets.model_file import load_model  # noqa: E402
from TeethSegmentationLib.training.distributed import DistContext, context_from_env  # noqa: E402
from TeethSegmentationLib.training.trainer import DEBUG_RANK_DIR_ENV  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_context_from_env():
    assert context_from_env({}) == DistContext() and not DistContext().enabled
    ctx = context_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert ctx.enabled and not ctx.is_main and ctx.world_size == 2


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_gloo_processes_end_with_identical_weights_and_a_falling_loss(tmp_path):
    write_cases(tmp_path / "data", 2)
    dump, out = tmp_path / "ranks", tmp_path / "ddp.pt"
    env = {**os.environ, DEBUG_RANK_DIR_ENV: str(dump), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        "-m",
        "TeethSegmentationLib",
        "train",
        "--data",
        str(tmp_path / "data"),
        "--output",
        str(out),
        "--events",
        "--stages",
        "teeth",
        "--epochs",
        "3",
        "--steps-per-epoch",
        "4",
        "--patch",
        "24",
        "--filters-teeth",
        "4",
        "--teeth-spacing",
        "1.5",
        "--lr",
        "3e-3",
        "--device",
        "cpu",
        "--val-fraction",
        "0",
        "--no-augment",
    ]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in done.stdout.splitlines()]  # rank 0 only: every line is JSON
    assert [r["event"] for r in records].count("start") == 1  # every event comes from rank 0 only
    assert [r["event"] for r in records].count("result") == 1
    epochs = [r for r in records if r["event"] == "progress" and "epoch" in r]
    assert len(epochs) == 3
    losses = [r["loss"] for r in epochs]
    assert losses[-1] < losses[0]
    rank0, rank1 = (torch.load(dump / f"rank{r}.pt", weights_only=True)["state"] for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    model = load_model(out)
    assert model.training["world_size"] == 2
    for key, value in model.teeth_net.state_dict().items():
        assert torch.equal(value, rank0[f"teeth.{key}"])
