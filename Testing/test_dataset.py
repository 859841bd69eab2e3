"""Training data: finding cases, label sources, preparation per stage and patch sampling."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _train_phantoms import tiny_case, write_cases  # noqa: E402

from TeethSegmentationLib.errors import InputError  # noqa: E402
from TeethSegmentationLib.fdi import fdi_map_to_classes  # noqa: E402
from TeethSegmentationLib.io.read_write import write_volume  # noqa: E402
from TeethSegmentationLib.label_tables import from_fdi  # noqa: E402
from TeethSegmentationLib.training import dataset  # noqa: E402
from TeethSegmentationLib.training.augment import NO_AUGMENTATION  # noqa: E402


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> list[tuple[Path, Path]]:
    return write_cases(tmp_path_factory.mktemp("cases"), 2)


@pytest.fixture(scope="module")
def prepared(pairs) -> dataset.PreparedCase:
    case = dataset.Case("case00", *pairs[0])
    return dataset.prepare_case(case, 1.0)


def test_find_cases_pairs_images_with_label_suffixes(tmp_path, pairs):
    image, labels = tiny_case(0)
    write_volume(image, tmp_path / "a.nrrd")
    write_volume(labels, tmp_path / "a.labels.nrrd")
    write_volume(image, tmp_path / "b.nii.gz")
    write_volume(labels, tmp_path / "b_labels.nii.gz")
    write_volume(image, tmp_path / "lonely.nrrd")
    cases = dataset.find_cases(tmp_path)
    assert [(c.name, c.image.name, c.labels.name) for c in cases] == [
        ("a", "a.nrrd", "a.labels.nrrd"),
        ("b", "b.nii.gz", "b_labels.nii.gz"),
    ]


def test_missing_or_mismatched_data_is_an_input_error(tmp_path, pairs):
    with pytest.raises(InputError, match="No training cases"):
        dataset.find_cases(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        dataset.find_cases(tmp_path / "nowhere")
    with pytest.raises(InputError, match="2 images but 1 label"):
        dataset.cases_from_paths([str(pairs[0][0]), str(pairs[1][0])], [str(pairs[0][1])])
    with pytest.raises(InputError, match="does not exist"):
        dataset.cases_from_paths([str(tmp_path / "x.nrrd")], [str(pairs[0][1])])


def test_label_kind_detection_and_unknown_values():
    assert dataset.detect_label_kind(np.array([0, 1])) == "binary"
    assert dataset.detect_label_kind(np.array([0, 3, 8])) == "classes"
    assert dataset.detect_label_kind(np.array([0, 11, 48])) == "fdi"
    with pytest.raises(InputError, match=r"\[9, 50\]"):
        dataset.detect_label_kind(np.array([0, 9, 11, 50]))
    with pytest.raises(InputError, match="--label-kind binary"):
        dataset.canonical_labels(np.array([0, 1, 2]), "binary")
    labels, kind = dataset.canonical_labels(np.array([0, 3, 34, 1]), "auto", "dentvoxel")
    assert kind == "fdi" and labels.tolist() == [0, 11, 48, 0]


def test_stage_targets_from_each_label_source():
    fdi = np.array([0, 11, 26, 48], dtype=np.uint8)
    assert dataset.stage_target(fdi, "fdi", "teeth").tolist() == [0, 1, 1, 1]
    assert dataset.stage_target(fdi, "fdi", "types").tolist() == [0, 1, 6, 8]
    assert dataset.stage_target(np.array([0, 6]), "classes", "types").tolist() == [0, 6]
    with pytest.raises(InputError, match="teeth stage"):
        dataset.stage_target(np.array([0, 1]), "binary", "types")


def test_prepare_case_resamples_normalises_and_indexes_teeth_by_type(pairs, prepared):
    coarse = dataset.prepare_case(dataset.Case("c", *pairs[0]), 2.0)
    assert prepared.image.dtype == np.float16 and prepared.labels.dtype == np.uint8
    assert all(abs(a - 2 * b) <= 1 for a, b in zip(prepared.image.shape, coarse.image.shape, strict=True))
    assert prepared.kind == "fdi" and -0.6 < prepared.cval < 0.2
    types = fdi_map_to_classes(prepared.labels)
    assert sorted(prepared.groups) == sorted(int(t) for t in np.unique(types) if t)
    for t, voxels in prepared.groups.items():
        assert np.all(types.flat[voxels] == t)


def test_cases_prepared_side_by_side_equal_those_prepared_in_order(tmp_path, pairs, monkeypatch):
    cases = [dataset.Case(f"case{n}", *pair) for n, pair in enumerate(pairs)]
    in_order = dataset.prepare_cases(cases, 1.0)
    pools = []
    real = dataset._prepare_in_processes
    monkeypatch.setattr(dataset, "_prepare_in_processes", lambda *a: pools.append(a[2]) or real(*a))
    side_by_side = dataset.prepare_cases(cases, 1.0, processes=2)
    assert pools == [2]  # the processes really ran
    assert [c.name for c in side_by_side] == ["case0", "case1"]
    for a, b in zip(in_order, side_by_side, strict=True):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels) and str(a.box) == str(b.box)
    image, labels = tiny_case(0)
    write_volume(image, tmp_path / "bad.nrrd")
    moved = labels.ijk_to_ras.copy()
    moved[:3, 3] += 5.0
    write_volume(type(labels)(labels.array, moved, labels.space), tmp_path / "bad.labels.nrrd")  # not on its grid
    with pytest.raises(InputError, match="does not lie on the grid"):
        dataset.prepare_cases([*cases, dataset.Case("bad", tmp_path / "bad.nrrd", tmp_path / "bad.labels.nrrd")],
                              1.0, processes=2)


def test_prepare_case_reads_other_label_sources(tmp_path):
    image, labels = tiny_case(1)
    write_volume(image, tmp_path / "i.nrrd")
    write_volume(labels.with_array(from_fdi(labels.array, "toothfairy2").astype(np.uint16)), tmp_path / "tf.nrrd")
    write_volume(labels.with_array((labels.array > 0).astype(np.uint8)), tmp_path / "bin.nrrd")
    tf = dataset.prepare_case(
        dataset.Case("tf", tmp_path / "i.nrrd", tmp_path / "tf.nrrd"), 0.5, label_table="toothfairy2"
    )
    assert tf.kind == "fdi" and set(np.unique(tf.labels)) == set(np.unique(labels.array))
    binary = dataset.prepare_case(dataset.Case("b", tmp_path / "i.nrrd", tmp_path / "bin.nrrd"), 1.0)
    assert binary.kind == "binary" and list(binary.groups) == [1]


def test_patches_are_reproducible_shaped_and_padded(prepared):
    params = dataset.SamplingParams(patch=48, augment=NO_AUGMENTATION)
    ds = dataset.PatchDataset([prepared], params, stage="types", length=6, seed=3)
    a_img, a_tgt = ds[2]
    b_img, b_tgt = ds[2]
    assert a_img.shape == (1, 48, 48, 48) and a_tgt.shape == (48, 48, 48)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_tgt, b_tgt)
    ds.set_epoch(1)
    assert not np.array_equal(ds[2][0], a_img)
    big = dataset.PatchDataset([prepared], dataset.SamplingParams(patch=128), stage="teeth", length=1)
    img, tgt = big[0]  # larger than the tiny volume: padded
    assert img.shape == (1, 128, 128, 128) and set(np.unique(tgt.numpy())) <= {0, 1}


def test_foreground_oversampling_and_per_type_balance(prepared):
    params = dataset.SamplingParams(patch=16, foreground_fraction=1.0, augment=NO_AUGMENTATION)
    found = [
        set(np.unique(dataset.make_patch(prepared, dataset.item_rng(0, 0, 0, i), params, 2)[1])) - {0}
        for i in range(60)
    ]
    assert sum(bool(types) for types in found) >= 55  # centred near a tooth voxel
    assert set().union(*found) >= set(prepared.groups)  # every type is sampled, small incisors included
    background = dataset.SamplingParams(patch=16, foreground_fraction=0.0, augment=NO_AUGMENTATION)
    centers = [dataset.choose_center(prepared, dataset.item_rng(0, 0, 0, i), background) for i in range(40)]
    assert all(np.all((0 <= c) & (c < prepared.image.shape)) for c in centers)


def test_primary_teeth_are_sampled_as_their_own_classes():
    # A child's arch piece: a big permanent first molar (16) and a small primary second molar (55) beside it.
    # Drawn by place type, 55 would share the premolar group with the forming 15; drawn by the 14 classes it
    # is a group of its own, centred on as often as the molar.
    labels = np.zeros((40, 20, 20), dtype=np.uint8)
    labels[2:20, 2:18, 2:18] = 16
    labels[24:28, 8:12, 8:12] = 55
    labels[30:36, 8:12, 2:6] = 15
    groups = dataset.foreground_groups(labels, "fdi")
    assert set(groups) == {5, 6, 13}  # second premolar, first molar, primary second molar (14 classes)
    case = dataset.PreparedCase("child", np.zeros(labels.shape, np.float16), labels, "fdi", 0.0, groups)
    params = dataset.SamplingParams(patch=8, foreground_fraction=1.0, augment=NO_AUGMENTATION)
    centres = [dataset.choose_center(case, dataset.item_rng(0, 0, 0, i), params) for i in range(300)]
    near_primary = sum(1 for c in centres if 22 <= c[0] <= 29)  # the primary molar, give or take the jitter
    assert near_primary > 80  # a third of the draws (lumped with the forming 15, a fifth)


def test_a_share_of_a_childs_patches_is_drawn_on_its_primary_incisors():
    # Permanent incisors and molars beside two small primary incisors (51, 52): drawn as two types in six, the
    # primary incisors get a third of the draws; with a share of 0.5, half plus a third of the rest.
    labels = np.zeros((60, 20, 20), dtype=np.uint8)
    for k, fdi in enumerate((11, 12, 13, 16)):
        labels[2 + 10 * k : 10 + 10 * k, 2:18, 2:18] = fdi
    labels[44:47, 8:11, 8:11] = 51
    labels[52:55, 8:11, 8:11] = 52
    groups = dataset.foreground_groups(labels, "fdi")
    assert set(dataset.PRIMARY_INCISOR_CLASSES) <= set(groups)
    case = dataset.PreparedCase("child", np.zeros(labels.shape, np.float16), labels, "fdi", 0.0, groups)

    def share_on_incisors(share: float) -> float:
        params = dataset.SamplingParams(
            patch=4, foreground_fraction=1.0, augment=NO_AUGMENTATION, primary_incisor_share=share
        )
        centres = [dataset.choose_center(case, dataset.item_rng(0, 0, 0, i), params) for i in range(600)]
        return float(np.mean([c[0] >= 42 for c in centres]))  # the two primary incisors, give or take the jitter

    assert 0.25 < share_on_incisors(0.0) < 0.42
    assert 0.58 < share_on_incisors(0.5) < 0.75
    assert share_on_incisors(1.0) == 1.0
    adult = dataset.PreparedCase("adult", case.image, np.where(labels > 50, 0, labels).astype(np.uint8), "fdi", 0.0)
    adult.groups = dataset.foreground_groups(adult.labels, "fdi")
    params = dataset.SamplingParams(
        patch=4, foreground_fraction=1.0, augment=NO_AUGMENTATION, primary_incisor_share=1.0
    )
    centres = [dataset.choose_center(adult, dataset.item_rng(0, 0, 0, i), params) for i in range(50)]
    assert all(c[0] < 42 for c in centres)  # no primary incisors: the share draws nothing


def test_stage_2_background_patches_stay_near_the_teeth(prepared):
    """Stage 2 sees only the teeth box plus a margin at inference; its background patches come from there."""
    lo, hi = map(np.asarray, prepared.box)
    mask = prepared.labels > 0
    # the box holds every tooth voxel, and is tight
    assert mask[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))].sum() == mask.sum()
    assert not mask[: lo[0]].any() and not mask[hi[0] :].any()
    near = dataset.SamplingParams(patch=16, foreground_fraction=0.0, augment=NO_AUGMENTATION, background_margin=2)
    centers = np.array([dataset.choose_center(prepared, dataset.item_rng(0, 0, 0, i), near) for i in range(200)])
    assert np.all(centers >= np.maximum(lo - 2, 0)) and np.all(centers < np.minimum(hi + 2, prepared.image.shape))
    assert len({tuple(c) for c in centers}) > 150  # still spread over the box


def test_teeth_box_of_an_empty_label_map_is_none():
    assert dataset.teeth_box(np.zeros((4, 5, 6), np.uint8)) is None
    labels = np.zeros((4, 5, 6), np.uint8)
    labels[1, 2:4, 5] = 11
    assert dataset.teeth_box(labels) == ((1, 2, 5), (2, 4, 6))


def test_teeth_channel_adds_a_second_input(prepared):
    params = dataset.SamplingParams(patch=32, teeth_channel=True)
    img, _ = dataset.PatchDataset([prepared], params, stage="types", length=1)[0]
    assert img.shape == (2, 32, 32, 32) and 0 <= float(img[1].min()) and float(img[1].max()) <= 1
