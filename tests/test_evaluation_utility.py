"""Tests of ``medgan.evaluation.utility``: the downstream diagnostic utility (train on real / real+synthetic /
synthetic, test on real)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from medgan.data import SliceSet
from medgan.data.intensity import IntensityMapping
from medgan.errors import ConfigError, DataError
from medgan.evaluation.utility import (
    UtilityConfig,
    classification_metrics,
    format_utility,
    predict_probabilities,
    rank_auc,
    run_utility,
    split_real,
    summarize,
    train_classifier,
    utility_html,
)
from medgan.evaluation.utility import classifier, protocol

CLASSES = ("disc", "square", "ring")
RESOLUTION = 32
FAST = UtilityConfig(seeds=2, epochs=10, min_steps=0, batch_size=16, lr=3e-3, width=8, threads=1)

IDENTITY = IntensityMapping(kind="identity", low=-1.0, high=1.0, unit="a.u.")


def shape_image(kind: int, generator: np.random.Generator, noise: float) -> np.ndarray:
    """A disc, square or ring of random size and position on a -1 background, plus Gaussian noise."""
    y, x = np.mgrid[:RESOLUTION, :RESOLUTION].astype(np.float32)
    cy, cx = RESOLUTION / 2 + generator.uniform(-3, 3, size=2)
    size = generator.uniform(7, 10)
    radius = np.hypot(y - cy, x - cx)
    if kind == 0:
        mask = radius <= size
    elif kind == 1:
        mask = np.maximum(abs(y - cy), abs(x - cx)) <= size * 0.8
    else:
        mask = (radius <= size) & (radius >= size - 3)
    image = np.where(mask, 0.6, -1.0) + generator.normal(0, noise, size=mask.shape)
    return np.clip(image, -1, 1).astype(np.float32)


def make_set(
    subjects: int, per_subject: int, seed: int, noise: float = 0.25, classes: tuple[str, ...] = CLASSES
) -> SliceSet:
    """``subjects`` subjects, each with ``per_subject`` images of every class."""
    generator = np.random.default_rng(seed)
    images, labels, names = [], [], []
    for subject in range(subjects):
        for label in range(len(classes)):
            for _ in range(per_subject):
                images.append(shape_image(label, generator, noise))
                labels.append(label)
                names.append(f"s{seed}-{subject}")
    return SliceSet(
        images=torch.from_numpy(np.stack(images))[:, None],
        mapping=IDENTITY,
        spacing=(1.0, 1.0),
        subjects=names,
        sources=[f"{name}#{index}" for index, name in enumerate(names)],
        labels=torch.tensor(labels, dtype=torch.int64),
        class_names=classes,
    )


@pytest.fixture(scope="module")
def real_train() -> SliceSet:
    return make_set(subjects=4, per_subject=5, seed=1)


@pytest.fixture(scope="module")
def real_test() -> SliceSet:
    return make_set(subjects=3, per_subject=5, seed=2)


@pytest.fixture(scope="module")
def informative() -> SliceSet:
    """A perfect generator: fresh draws from the real shape distribution (another seed, no shared subjects)."""
    return make_set(subjects=2, per_subject=10, seed=3)


@pytest.fixture(scope="module")
def result(real_train: SliceSet, real_test: SliceSet, informative: SliceSet) -> dict:
    return run_utility(real_train, real_test, informative, FAST, progress=False)


# ------------------------------------------------------------------------------------------------ metrics


def test_classification_metrics_match_hand_computed_values() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.array(
        [
            [0.7, 0.2, 0.1],  # 0 -> 0
            [0.3, 0.6, 0.1],  # 0 -> 1
            [0.1, 0.8, 0.1],  # 1 -> 1
            [0.2, 0.5, 0.3],  # 1 -> 1
            [0.1, 0.1, 0.8],  # 2 -> 2
            [0.6, 0.1, 0.3],  # 2 -> 0
        ]
    )
    metrics = classification_metrics(labels, probabilities, CLASSES)
    # disc: TP 1, FN 1; negatives 4 of which 1 predicted disc (FP) -> spec 3/4.
    assert metrics["per_class"]["disc"]["sensitivity"] == pytest.approx(0.5)
    assert metrics["per_class"]["disc"]["specificity"] == pytest.approx(0.75)
    # square: TP 2, FN 0; FP 1 (the second disc) -> spec 3/4.
    assert metrics["per_class"]["square"]["sensitivity"] == pytest.approx(1.0)
    assert metrics["per_class"]["square"]["specificity"] == pytest.approx(0.75)
    # ring: TP 1, FN 1; no FP -> spec 1.
    assert metrics["per_class"]["ring"]["sensitivity"] == pytest.approx(0.5)
    assert metrics["per_class"]["ring"]["specificity"] == pytest.approx(1.0)
    # disc AUC: positives score 0.7, 0.3; negatives 0.1, 0.2, 0.1, 0.6 -> pairs won 4 + 3 of 8.
    assert metrics["per_class"]["disc"]["auc"] == pytest.approx(7 / 8)
    # ring AUC: positives 0.8, 0.3; negatives 0.1, 0.1, 0.1, 0.3 -> 4 + (3 + tie 0.5) of 8.
    assert metrics["per_class"]["ring"]["auc"] == pytest.approx(7.5 / 8)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["balanced_accuracy"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    assert metrics["macro_specificity"] == pytest.approx((0.75 + 0.75 + 1.0) / 3)
    expected_auc = np.mean([metrics["per_class"][name]["auc"] for name in CLASSES])
    assert metrics["macro_auc"] == pytest.approx(expected_auc)


def test_rank_auc_matches_hand_value_and_sklearn() -> None:
    positive = np.array([True, False, True, False])
    scores = np.array([0.9, 0.8, 0.3, 0.1])
    assert rank_auc(positive, scores) == pytest.approx(0.75)  # 3 of 4 positive-negative pairs ordered
    assert rank_auc(positive, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)  # ties count one half
    generator = np.random.default_rng(0)
    labels = generator.random(50) < 0.4
    noisy = generator.random(50) + labels * 0.3
    from sklearn.metrics import roc_auc_score

    assert rank_auc(labels, noisy) == pytest.approx(roc_auc_score(labels, noisy))


def test_summarize_uses_the_t_interval() -> None:
    summary = summarize([1, 2, 3, 4, 5], confidence=0.95)
    # std = sqrt(2.5); t_{0.975, 4} = 2.776445; half width = t * std / sqrt(5) = 1.963243
    assert summary["mean"] == pytest.approx(3.0)
    assert summary["std"] == pytest.approx(math.sqrt(2.5))
    assert summary["ci_high"] - summary["mean"] == pytest.approx(1.963243, abs=1e-5)
    assert summary["ci_low"] < summary["mean"] < summary["ci_high"]
    ten = summarize([1, 2, 3, 4, 5] * 2, confidence=0.95)
    assert ten["ci_high"] - ten["ci_low"] < summary["ci_high"] - summary["ci_low"]
    wider = summarize([1, 2, 3, 4, 5], confidence=0.99)
    assert wider["ci_high"] - wider["ci_low"] > summary["ci_high"] - summary["ci_low"]
    clipped = summarize([0.9, 1.0], bounds=(0.0, 1.0))  # unclipped: 0.95 +/- 0.635
    assert clipped["ci_high"] == 1.0 and clipped["ci_low"] == pytest.approx(0.95 - 0.635310, abs=1e-5)
    single = summarize([0.7])
    assert single["mean"] == 0.7 and single["ci_low"] is None and single["ci_high"] is None


# ------------------------------------------------------------------------------------------------ end to end


def test_run_utility_reports_every_arm_in_range(result: dict, real_train: SliceSet, real_test: SliceSet) -> None:
    assert set(result["arms"]) == {"real", "real+synthetic", "synthetic"}
    assert result["n_train"] == len(real_train.labels) and result["n_test"] == len(real_test.labels)
    assert result["n_synthetic"] == len(real_train.labels)  # as many per class as real training images
    assert result["n_synthetic_per_class"] == {name: 20 for name in CLASSES}
    assert result["steps_per_run"] == 10 * 4  # 60 real training images in batches of 16, for every arm
    for arm in result["arms"].values():
        for summary in arm.values():
            assert len(summary["values"]) == 2
            assert all(0.0 <= value <= 1.0 for value in summary["values"])
            assert summary["ci_low"] <= summary["mean"] <= summary["ci_high"]
    for arm in result["per_class"].values():
        assert set(arm) == set(CLASSES)
    json.loads(json.dumps(result))  # JSON-serialisable as is


def test_informative_synthetic_set_gives_high_tstr_accuracy(result: dict) -> None:
    assert result["arms"]["synthetic"]["balanced_accuracy"]["mean"] > 0.8
    assert result["arms"]["real"]["balanced_accuracy"]["mean"] > 0.8
    assert result["arms"]["synthetic"]["macro_auc"]["mean"] > 0.9


def test_differences_are_paired_per_seed(result: dict) -> None:
    difference = result["differences"]["synthetic - real"]["balanced_accuracy"]
    expected = np.subtract(
        result["arms"]["synthetic"]["balanced_accuracy"]["values"],
        result["arms"]["real"]["balanced_accuracy"]["values"],
    )
    np.testing.assert_allclose(difference["values"], expected)
    assert set(result["differences"]) == {"real+synthetic - real", "synthetic - real"}


def test_label_shuffled_synthetic_set_gives_near_chance_tstr(informative: SliceSet, real_test: SliceSet) -> None:
    labels = informative.labels[torch.randperm(len(informative.labels), generator=torch.Generator().manual_seed(0))]
    model = train_classifier(informative.images, labels, 3, FAST, seed=0)
    probabilities = predict_probabilities(model, real_test.images, FAST)
    metrics = classification_metrics(real_test.labels.numpy(), probabilities, CLASSES)
    assert metrics["balanced_accuracy"] < 0.6  # chance is 1/3; informative labels reach > 0.8


def test_training_is_deterministic_per_seed(real_train: SliceSet, real_test: SliceSet) -> None:
    config = dataclasses.replace(FAST, epochs=1)
    models = [train_classifier(real_train.images, real_train.labels, 3, config, seed) for seed in (5, 5, 6)]
    runs = [predict_probabilities(model, real_test.images, config) for model in models]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_training_steps_follow_epochs_with_a_floor() -> None:
    assert classifier.training_steps(60, FAST) == 40
    assert classifier.training_steps(65, FAST) == 40  # a trailing batch of one image is dropped
    assert classifier.training_steps(60, dataclasses.replace(FAST, min_steps=100)) == 100
    stream = list(classifier._batch_stream(10, 4, torch.Generator().manual_seed(0), steps=7))
    assert len(stream) == 7 and all(len(batch) >= 2 for batch in stream)
    assert sorted(torch.cat(stream[:3]).tolist()) == list(range(10))  # each pass covers every image once


def test_text_and_html_reports(result: dict) -> None:
    text = format_utility(result)
    assert "synthetic (TSTR)" in text and "balanced accuracy" in text and "ring AUC" in text
    assert f"{result['arms']['real']['accuracy']['mean']:.3f}" in text
    hostile = "<b>disc</b>"  # class names come from user files: they must be escaped in HTML
    renamed = dict(
        result,
        class_names=[hostile, *result["class_names"][1:]],
        per_class={arm: {hostile if name == "disc" else name: value for name, value in classes.items()}
                   for arm, classes in result["per_class"].items()},
    )
    fragment = utility_html(renamed)
    assert fragment.startswith('<section class="utility">') and fragment.count("<table>") == 3
    assert "&lt;b&gt;disc&lt;/b&gt;" in fragment and "<b>disc</b>" not in fragment


# ------------------------------------------------------------------------------------------------ inputs


def test_split_real_is_patient_level(real_train: SliceSet) -> None:
    train, test = split_real(real_train, test_fraction=0.5, seed=0)
    assert not set(train.subjects) & set(test.subjects)
    assert len(train.labels) + len(test.labels) == len(real_train.labels)
    assert len(train.sources) == len(train.labels) and set(test.labels.tolist()) == {0, 1, 2}


def test_without_a_test_set_the_real_set_is_split_by_subject(real_train: SliceSet, informative: SliceSet) -> None:
    config = dataclasses.replace(FAST, seeds=1, epochs=1, test_fraction=0.5)
    single = run_utility(real_train, None, informative, config, progress=False)
    assert single["n_train"] + single["n_test"] == len(real_train.labels) and single["shared_subjects"] == 0
    assert single["arms"]["real"]["accuracy"]["ci_low"] is None  # one seed: no interval
    assert "n/a (1 seed)" in format_utility(single) and "<table>" in utility_html(single)


def test_split_real_names_the_missing_class(real_train: SliceSet) -> None:
    # Only one subject holds rings, so one side of any split lacks them.
    keep = [index for index, (label, subject) in enumerate(zip(real_train.labels, real_train.subjects))
            if label != 2 or subject == "s1-0"]
    lopsided = protocol._subset(real_train, np.array(keep))
    with pytest.raises(DataError, match="'ring'.*test fraction"):
        split_real(lopsided, test_fraction=0.5, seed=0)


def test_synthetic_without_labels_is_rejected(real_train: SliceSet, real_test: SliceSet, informative: SliceSet) -> None:
    with pytest.raises(DataError, match="synthetic set has no class labels"):
        run_utility(real_train, real_test, dataclasses.replace(informative, labels=None), FAST, progress=False)


def test_differing_class_names_are_named(real_train: SliceSet, real_test: SliceSet, informative: SliceSet) -> None:
    renamed = dataclasses.replace(informative, class_names=("disc", "square", "cyst"))
    with pytest.raises(DataError, match=r"only in real: \['ring'\]; only in synthetic: \['cyst'\]"):
        run_utility(real_train, real_test, renamed, FAST, progress=False)


def test_reordered_class_names_are_aligned() -> None:
    labels = torch.tensor([0, 1, 2, 2])
    aligned = protocol._aligned_labels(CLASSES, ("ring", "disc", "square"), labels, "synthetic")
    assert aligned.tolist() == [2, 0, 1, 1]


def test_class_missing_from_test_set_is_named(real_train: SliceSet, real_test: SliceSet, informative: SliceSet) -> None:
    no_squares = protocol._subset(real_test, np.flatnonzero(real_test.labels.numpy() != 1))
    with pytest.raises(DataError, match="'square' has no images in the real test set"):
        run_utility(real_train, no_squares, informative, FAST, progress=False)


def test_a_single_class_is_rejected() -> None:
    one = make_set(subjects=2, per_subject=2, seed=0, classes=("disc",))
    with pytest.raises(DataError, match="at least 2 classes"):
        run_utility(one, one, one, FAST, progress=False)


def test_differing_image_sizes_are_rejected(real_train: SliceSet, real_test: SliceSet, informative: SliceSet) -> None:
    small = dataclasses.replace(informative, images=informative.images[..., :16, :16])
    with pytest.raises(DataError, match=r"synthetic \(1, 16, 16\)"):
        run_utility(real_train, real_test, small, FAST, progress=False)


def test_invalid_config_is_rejected(real_train: SliceSet, real_test: SliceSet, informative: SliceSet) -> None:
    with pytest.raises(ConfigError, match="utility.confidence"):
        run_utility(real_train, real_test, informative, dataclasses.replace(FAST, confidence=1.5), progress=False)


def test_judge_selection_drops_samples_of_the_wrong_class(real_train: SliceSet, informative: SliceSet) -> None:
    """A generator whose every third sample shows another class than requested: the real-trained judge must
    reject most of the mislabelled ones, keep at most ``per_class`` per class, and report the counts."""
    from medgan.evaluation.utility import acceptance_rate, select_consistent

    labels = informative.labels.clone()
    wrong = torch.arange(len(labels)) % 3 == 0
    labels[wrong] = (labels[wrong] + 1) % 3  # requested class differs from the drawn shape
    noisy = dataclasses.replace(informative, labels=labels)
    judge = dataclasses.replace(FAST, epochs=40)  # FAST's 37 steps leave disc and square apart by 0.5 or so
    kept, info = select_consistent(real_train, noisy, per_class=15, config=judge, seed=0)
    assert info["generated"] == labels.bincount().tolist() and all(k <= 15 for k in info["kept"])
    assert info["kept"] == [min(15, a) for a in info["accepted"]] and acceptance_rate(info) < 0.8
    kept_wrong = wrong[[int(s.split("#")[1]) for s in kept.sources]]
    assert kept_wrong.float().mean() < 0.1 < wrong.float().mean()  # label noise: 1/3 generated, < 1/10 kept
    assert kept.class_names == informative.class_names and len(kept.images) == sum(info["kept"])
    with pytest.raises(DataError, match="passed the real-trained judge"):
        select_consistent(real_train, noisy, per_class=5, config=judge, seed=0, min_confidence=1.01)
