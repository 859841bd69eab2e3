"""Store the weights digest in a model file made before digests existed; the weights stay bit-identical.

    python scripts/add_model_digest.py Resources/Models/teethseg-default.pt

Reproducible: the digest depends only on the architectures and the tensors, so running it again
changes nothing. The script reloads the written file and checks every tensor against the original.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from TeethSegmentationLib.nets.model_fields import DIGEST_KEY, STAGES, weights_digest  # noqa: E402
from TeethSegmentationLib.nets.model_file import atomic_torch_save, read_model_dict  # noqa: E402


def add_digest(path: Path) -> str:
    data = read_model_dict(path)
    digest = weights_digest(data)
    if data.get(DIGEST_KEY) == digest:
        return digest
    if data.get(DIGEST_KEY) is not None:
        raise SystemExit(f"{path} carries a different digest: its weights changed since it was saved.")
    atomic_torch_save({**data, DIGEST_KEY: digest}, path)
    written = torch.load(path, map_location="cpu", weights_only=True)
    for stage in STAGES:
        before, after = (data.get(stage) or {}).get("state_dict", {}), (written.get(stage) or {}).get("state_dict", {})
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before), stage
    assert written[DIGEST_KEY] == weights_digest(written)
    return digest


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {DIGEST_KEY} {add_digest(Path(name))}")
