"""The model file: saved atomically, loaded with weights_only=True, refused with one sentence when foreign."""

import numpy as np
import pytest
import torch

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.nets.model_file import load_model, new_model, read_model_dict, save_model


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    model = new_model(spacing_mm=0.4, teeth_spacing_mm=1.2, types_input="image+teeth")
    model.training = {"epochs": np.int64(3), "dice": {"mean": np.float32(0.5)}, "cases": ["a", "b"],
                      "torch": torch.__version__}  # a str subclass that weights_only refuses
    save_model(model, tmp_path / "m.pt")
    torch.load(tmp_path / "m.pt", weights_only=True)  # numpy scalars were converted to plain values
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.spacing_mm == pytest.approx(0.4) and loaded.teeth_spacing_mm == pytest.approx(1.2)
    assert loaded.types_input == "image+teeth" and loaded.types_net.config["in_channels"] == 2
    assert loaded.training == {"epochs": 3, "dice": {"mean": 0.5}, "cases": ["a", "b"], "torch": str(torch.__version__)}
    for a, b in zip(model.teeth_net.state_dict().values(), loaded.teeth_net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left behind


@pytest.mark.parametrize(
    "content, phrase",
    [
        (b"not a model at all", "cannot be read"),
        ({"weights": torch.zeros(2)}, "not a TeethSegmentation model"),
        ({"format": "teethseg-model", "format_version": 99}, "newer than"),
    ],
)
def test_foreign_damaged_or_newer_files_are_refused(tmp_path, content, phrase):
    path = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(InputError, match=phrase) as info:
        read_model_dict(path)
    assert "\n" not in str(info.value)


def test_truncated_file_is_refused(tmp_path):
    save_model(new_model(), tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot be read"):
        load_model(tmp_path / "cut.pt")


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
