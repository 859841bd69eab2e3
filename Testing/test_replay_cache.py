"""Fine-tuning's replay phantoms: generated once, then read from the cache; never stale; a cache that cannot be
written falls back to the run's own folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from TeethSegmentationLib.events import NullReporter
from TeethSegmentationLib.io.read_write import read_volume
from TeethSegmentationLib.phantom import make_phantom
from TeethSegmentationLib.training import replay


def test_second_run_reads_the_cached_phantoms(tmp_path, monkeypatch):
    cache, work = tmp_path / "cache", tmp_path / "work"
    work.mkdir()
    images, labels = replay.replay_phantoms(2, 0, "tiny", work, cache, NullReporter())
    assert all(Path(p).parent == cache for p in images + labels) and not any(work.iterdir())
    truth = make_phantom(replay.REPLAY_SEED + 1, size="tiny", fov="crop")
    np.testing.assert_array_equal(read_volume(labels[1]).array, truth.labels.array)
    np.testing.assert_array_equal(read_volume(images[1]).array, truth.image.array)

    def no_generation(*args, **kwargs):
        raise AssertionError("a cached phantom was generated again")

    monkeypatch.setattr(replay, "_generate", no_generation)
    assert replay.replay_phantoms(2, 0, "tiny", work, cache, NullReporter()) == (images, labels)


def test_half_written_pair_and_other_seeds_are_generated(tmp_path):
    cache = tmp_path / "cache"
    images, labels = replay.replay_phantoms(1, 0, "tiny", tmp_path, cache, NullReporter())
    Path(images[0]).unlink()  # an image lost (the image is written last): the pair is made again
    again = replay.replay_phantoms(1, 0, "tiny", tmp_path, cache, NullReporter())
    assert again == (images, labels) and Path(images[0]).is_file()
    other = replay.replay_phantoms(1, 1, "tiny", tmp_path, cache, NullReporter())  # the fine-tuning's seed
    assert other[0] != images


def test_names_carry_the_generator_digest(tmp_path):
    images, _ = replay.replay_phantoms(1, 0, "tiny", tmp_path, tmp_path / "cache", NullReporter())
    digest = replay.generator_digest()
    assert len(digest) == 12 and f"-{digest}-tiny-" in Path(images[0]).name


def test_unwritable_cache_falls_back_to_the_work_folder(tmp_path):
    cache = tmp_path / "not-a-folder"
    cache.write_text("a file where the cache folder should be")  # fails even for root, unlike a read-only folder
    images, labels = replay.replay_phantoms(1, 0, "tiny", tmp_path, cache, NullReporter())
    assert Path(images[0]).parent == tmp_path and Path(labels[0]).is_file()


def test_no_cache_generates_into_the_work_folder(tmp_path):
    images, _ = replay.replay_phantoms(1, 0, "tiny", tmp_path, None, NullReporter())
    assert Path(images[0]).parent == tmp_path


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(replay.CACHE_ENV, str(tmp_path / "mine"))
    assert replay.default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(replay.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if os.name != "nt" and os.uname().sysname == "Linux":
        assert replay.default_cache_dir() == tmp_path / "xdg" / "teethseg"
