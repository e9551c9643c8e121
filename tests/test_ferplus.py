"""FER+ labels for FER2013: the majority rule, vote distributions, joining the jpg layout and fer2013.csv,
alignment through subsets and splits, soft targets in the loss, a smoke run, and bad input."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ferkit.cli import main
from ferkit.config import TrainConfig
from ferkit.data import FERPLUS_CLASSES, FaceDataset, load_dataset
from ferkit.data.ferplus import (
    VOTE_COLUMNS,
    find_ferplus,
    majority,
    scores_against_majority,
    usable_votes,
    vote_distribution,
)
from ferkit.data.splits import cap_per_class, make_splits
from ferkit.errors import ConfigError, DataError
from ferkit.training import Trainer

QUICK = dict(model="seed_cnn", batch_size=32, precision="fp32", threads=2, seed=3, device="cpu")
#        neutral happiness surprise sadness anger disgust fear contempt unknown NF
VOTES = [([0, 8, 1, 0, 0, 0, 0, 0, 1, 0], "happy"),
         ([0, 0, 0, 0, 5, 0, 0, 0, 4, 1], "angry"),  # a plurality is enough
         ([0, 0, 0, 0, 2, 5, 0, 0, 3, 0], "disgust"),
         ([4, 0, 0, 4, 0, 0, 0, 0, 2, 0], None),  # a tie at the top
         ([3, 0, 0, 0, 0, 0, 0, 0, 3, 4], None),  # NF wins
         ([2, 0, 0, 0, 0, 0, 0, 0, 6, 2], None),  # unknown wins
         ([3, 0, 0, 0, 0, 0, 0, 0, 3, 0], None),  # an emotion tied with unknown
         ([1, 0, 0, 0, 0, 0, 0, 7, 2, 0], None),  # contempt: not one of the seven classes
         ([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], None)]  # FER+ left the row unnamed: not a face


@pytest.fixture(scope="module")
def ferplus_dir(datasets_dir) -> Path:
    path = datasets_dir / "ferplus"
    if not (path / "fer2013new.csv").is_file():
        pytest.skip(f"FER+ files not found in {path}")
    return path


def test_majority_rule_drops_ties_unknown_nf_and_contempt():
    votes = np.array([v for v, _ in VOTES])
    expected = [FERPLUS_CLASSES.index(name) if name else -1 for _, name in VOTES]
    assert majority(votes).tolist() == expected


def test_vote_distribution_is_the_seven_emotions_normalised():
    soft = vote_distribution(np.array([v for v, _ in VOTES[:3]]))
    assert soft.dtype == np.float32 and soft.shape == (3, 7)
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-6)
    happy, surprise = FERPLUS_CLASSES.index("happy"), FERPLUS_CLASSES.index("surprise")
    assert soft[0, happy] == pytest.approx(8 / 9) and soft[0, surprise] == pytest.approx(1 / 9)
    assert (soft.argmax(1) == majority(np.array([v for v, _ in VOTES[:3]]))).all()


def _load(path, labels, ferplus):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_dataset(path, labels=labels, ferplus=ferplus)
    return data, [str(w.message) for w in caught]


def test_jpg_layout_with_ferplus_votes(fer2013_small, ferplus_dir):
    plain = load_dataset(fer2013_small)
    data, messages = _load(fer2013_small, "ferplus-votes", ferplus_dir)
    counts = data.meta["ferplus"]
    assert data.class_names == FERPLUS_CLASSES == plain.class_names
    assert counts["images"] == len(plain) == 630 and counts["kept"] == len(data)
    assert counts["no_ferplus_row"] + counts["no_majority"] == len(plain) - len(data) > 0
    assert len(messages) == 1 and f"dropped {len(plain) - len(data)} of 630 images" in messages[0]
    np.testing.assert_allclose(data.soft_labels.sum(1), 1.0, rtol=1e-6)
    assert (data.soft_labels.argmax(1) == data.labels).all()
    # the majority agrees with the mapping file's own column (the argmax over all ten counts)
    with open(ferplus_dir / "fer2013_jpg_to_ferplus_row.csv", newline="") as handle:
        best = {r["our_file"]: r["ferplus_majority_of_best"] for r in csv.DictReader(handle)}
    names = {"anger": "angry", "happiness": "happy", "sadness": "sad"}
    for source, label in zip(data.sources, data.labels):
        assert names.get(best[source], best[source]) == data.class_names[label]
    # the images are the ones of the plain load, in order
    index = {s: i for i, s in enumerate(plain.sources)}
    assert np.array_equal(plain.images[[index[s] for s in data.sources]], data.images)
    majority_only, _ = _load(fer2013_small, "ferplus-majority", ferplus_dir)
    assert majority_only.soft_labels is None and np.array_equal(majority_only.labels, data.labels)


def test_soft_labels_stay_aligned_through_caps_and_splits(fer2013_small, ferplus_dir):
    data, _ = _load(fer2013_small, "ferplus-votes", ferplus_dir)
    soft_of = {s: row for s, row in zip(data.sources, data.soft_labels)}
    image_of = {s: image for s, image in zip(data.sources, data.images)}
    splits = make_splits(cap_per_class(data, 10, seed=1))
    for part in (splits.train, splits.val, splits.test):
        assert len(part) and len(part.soft_labels) == len(part)
        for source, soft, image, label in zip(part.sources, part.soft_labels, part.images, part.labels):
            assert np.array_equal(soft_of[source], soft) and np.array_equal(image_of[source], image)
            assert soft.argmax() == label
    assert set(splits.test.usage) == {"PrivateTest"} and set(splits.val.usage) == {"PublicTest"}
    with pytest.raises(ValueError, match="soft_labels has 2 entries"):
        FaceDataset(images=data.images[:3], labels=data.labels[:3], class_names=data.class_names,
                    soft_labels=data.soft_labels[:2])


def _write_csvs(folder: Path, votes: list[list[int]], usage: list[str], fer_labels: list[int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(folder / "fer2013.csv", "w") as handle:
        handle.write("emotion,pixels,Usage\n")
        for label, u in zip(fer_labels, usage):
            handle.write(f"{label},{' '.join(map(str, rng.integers(0, 256, 48 * 48)))},{u}\n")
    with open(folder / "fer2013new.csv", "w") as handle:
        handle.write("Usage,Image name," + ",".join(VOTE_COLUMNS) + "\n")
        for i, (row, u) in enumerate(zip(votes, usage)):
            handle.write(f"{u},fer{i:07d}.png," + ",".join(map(str, row)) + "\n")
    return folder / "fer2013.csv"


def test_fer2013_csv_joins_by_row_order_and_finds_the_votes_beside_it(tmp_path):
    votes = [v for v, _ in VOTES]
    usage = ["Training", "PublicTest", "PrivateTest"] * 3
    path = _write_csvs(tmp_path / "fer", votes, usage, [0] * len(votes))
    data, messages = _load(path, "ferplus-votes", "")
    assert [data.class_names[i] for i in data.labels] == ["happy", "angry", "disgust"]
    assert data.sources.tolist() == ["fer2013.csv:2", "fer2013.csv:3", "fer2013.csv:4"]
    assert data.usage.tolist() == usage[:3] and data.images.shape == (3, 48, 48)
    assert len(messages) == 1 and "dropped 6 of 9 images (0 without a FER+ row, 6 whose" in messages[0]
    assert find_ferplus(path) == tmp_path / "fer"

    # the two files must belong together: same length, same usage row by row
    short = _write_csvs(tmp_path / "short", votes, usage, [0] * len(votes))
    (tmp_path / "short" / "fer2013new.csv").write_text(
        "\n".join((tmp_path / "short" / "fer2013new.csv").read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match="9 rows, but .* has 8"):
        load_dataset(short, labels="ferplus-majority")
    swapped = _write_csvs(tmp_path / "swapped", votes, usage, [0] * len(votes))
    _write_csvs(tmp_path / "other", votes, usage[::-1], [0] * len(votes))
    other = tmp_path / "other" / "fer2013new.csv"
    (tmp_path / "swapped" / "fer2013new.csv").write_bytes(other.read_bytes())
    with pytest.raises(DataError, match="do not belong together"):
        load_dataset(swapped, labels="ferplus-majority")


def test_default_ferplus_folder_is_found_beside_the_dataset(fer2013_dir, ferplus_dir):
    assert find_ferplus(fer2013_dir) == ferplus_dir.resolve()


def test_soft_targets_in_the_loss():
    torch.manual_seed(0)
    logits, labels = torch.randn(16, 7), torch.randint(0, 7, (16,))
    one_hot = nn.functional.one_hot(labels, 7).float()
    for smoothing in (0.0, 0.1):
        criterion = nn.CrossEntropyLoss(label_smoothing=smoothing)
        assert criterion(logits, one_hot).item() == pytest.approx(criterion(logits, labels).item(), rel=1e-6)
    # the trainer's targets: votes, mixed with the majority's one-hot row by soft_label_weight
    rng = np.random.default_rng(0)
    votes = rng.integers(0, 5, (32, 7)) + np.eye(7, dtype=np.int64)[rng.integers(0, 7, 32)] * 9
    soft = votes / votes.sum(1, keepdims=True)
    train = FaceDataset(images=rng.integers(0, 256, (32, 48, 48), dtype=np.uint8), labels=soft.argmax(1),
                        class_names=list(FERPLUS_CLASSES), soft_labels=soft.astype(np.float32))
    val = train.subset(slice(0, 8))
    expected = 0.3 * soft + 0.7 * np.eye(7)[soft.argmax(1)]
    trainer = Trainer(TrainConfig(**QUICK, soft_label_weight=0.3), train, val, progress=False)
    np.testing.assert_allclose(trainer.train_targets.numpy(), expected, rtol=1e-6)
    assert trainer.train_step(trainer.train_images[:8], trainer.train_targets[:8])[0].isfinite()
    hard = Trainer(TrainConfig(**QUICK), FaceDataset(train.images, train.labels, train.class_names), val,
                   progress=False)
    assert hard.train_targets.dtype == torch.int64 and torch.equal(hard.train_targets, hard.train_labels)


@pytest.mark.filterwarnings("ignore:FER\\+ labels")
def test_smoke_train_on_votes_then_evaluate_on_the_majority(fer2013_small, ferplus_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(fer2013_small), "--labels", "ferplus-votes", "--ferplus",
                 str(ferplus_dir), "--soft-label-weight", "0.5", "--model", "seed_cnn", "--epochs", "1",
                 "--batch-size", "32", "--threads", "2", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["labels"] == "ferplus-votes" and config["soft_label_weight"] == 0.5
    metrics = json.loads((run / "metrics.json").read_text())
    splits = json.loads((run / "splits.json").read_text())
    assert metrics["test"]["images"] == splits["test"]["size"] < 7 * 30  # PrivateTest with a FER+ majority
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "labels: FER+ majority" in out and f"on {metrics['test']['images']} images" in out


def test_usable_votes_keep_ties_between_emotions_only():
    votes = np.array([v for v, _ in VOTES])
    assert usable_votes(votes).tolist() == [True, True, True, True, False, False, False, False, False]
    assert not usable_votes(np.zeros((1, 10), dtype=np.int64))[0]  # no FER+ row: no votes at all


def test_mixed_labels_keep_every_image_and_its_fer2013_label(tmp_path):
    votes = [v for v, _ in VOTES]
    usage = ["Training", "PublicTest", "PrivateTest"] * 3
    fer_labels = [3, 0, 1, 2, 4, 5, 6, 0, 3]
    path = _write_csvs(tmp_path / "fer", votes, usage, fer_labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is dropped, so nothing to warn about
        data = load_dataset(path, labels="fer2013+ferplus-votes")
    plain = load_dataset(path)
    assert np.array_equal(data.images, plain.images) and np.array_equal(data.labels, plain.labels)
    assert data.class_names == FERPLUS_CLASSES and data.usage.tolist() == usage
    one_hot = np.eye(7, dtype=np.float32)[plain.labels]
    usable = usable_votes(np.array(votes))
    np.testing.assert_allclose(data.soft_labels[usable], vote_distribution(np.array(votes))[usable])
    np.testing.assert_array_equal(data.soft_labels[~usable], one_hot[~usable])
    assert data.meta["ferplus"] == {"folder": str(tmp_path / "fer"), "images": 9, "no_ferplus_row": 0,
                                    "unusable_votes": 5, "with_votes": 4}
    # the trainer's target: w · votes + (1 - w) · FER2013 one-hot; the FER2013 one-hot alone without votes
    trainer = Trainer(TrainConfig(**QUICK, soft_label_weight=0.3), data, data, progress=False)
    expected = np.where(usable[:, None], 0.3 * vote_distribution(np.array(votes)) + 0.7 * one_hot, one_hot)
    np.testing.assert_allclose(trainer.train_targets.numpy(), expected, rtol=1e-6)
    assert torch.equal(trainer.val_labels, torch.from_numpy(plain.labels))
    assert not scores_against_majority("fer2013+ferplus-votes") and scores_against_majority("ferplus-votes")


@pytest.mark.filterwarnings("ignore:FER\\+ labels")
def test_mixed_labels_on_the_jpg_layout_select_and_report_on_fer2013_labels(fer2013_small, ferplus_dir,
                                                                             tmp_path, capsys):
    plain = load_dataset(fer2013_small)
    data, messages = _load(fer2013_small, "fer2013+ferplus-votes", ferplus_dir)
    counts = data.meta["ferplus"]
    assert not messages and len(data) == len(plain) == counts["images"] == 630
    assert np.array_equal(data.labels, plain.labels) and np.array_equal(data.sources, plain.sources)
    assert counts["no_ferplus_row"] + counts["unusable_votes"] + counts["with_votes"] == 630
    assert 0 < counts["no_ferplus_row"] + counts["unusable_votes"] < counts["with_votes"]
    np.testing.assert_allclose(data.soft_labels.sum(1), 1.0, rtol=1e-6)
    votes_only, _ = _load(fer2013_small, "ferplus-votes", ferplus_dir)
    soft_of = dict(zip(data.sources, data.soft_labels))
    for source, soft in zip(votes_only.sources, votes_only.soft_labels):  # a majority: usable votes
        np.testing.assert_array_equal(soft_of[source], soft)

    run = tmp_path / "run"
    assert main(["train", "--data", str(fer2013_small), "--labels", "fer2013+ferplus-votes", "--ferplus",
                 str(ferplus_dir), "--soft-label-weight", "0.5", "--model", "seed_cnn", "--epochs", "1",
                 "--batch-size", "32", "--threads", "2", "--no-progress", "--out", str(run)]) == 0
    splits = json.loads((run / "splits.json").read_text())
    assert (splits["train"]["size"], splits["val"]["size"], splits["test"]["size"]) == (210, 210, 210)
    assert splits["val"]["counts"] == plain.where_usage("PublicTest").class_counts()
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--split", "test"]) == 0
    assert "FER+ majority" not in capsys.readouterr().out


def _one_error(capsys, *words: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("ferkit: error:")]
    assert len(errors) == 1 and all(w in errors[0] for w in words), err


def test_bad_ferplus_input_is_one_error_line(fer2013_small, ferplus_dir, tmp_path, capsys, ckplus_dir):
    train = ["train", "--data", str(fer2013_small), "--model", "seed_cnn", "--epochs", "1",
             "--labels", "ferplus-majority", "--out", str(tmp_path / "run")]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*train, "--ferplus", str(empty)]) == 2
    _one_error(capsys, str(empty), "fer2013new.csv")
    assert main(train) == 2  # fer2013_small has no FER+ folder beside it
    _one_error(capsys, "fer2013new.csv", "--ferplus")

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "fer2013new.csv").write_text("Usage,Image name,neutral,happiness\nTraining,a.png,3,7\n")
    assert main([*train, "--ferplus", str(wrong)]) == 2
    _one_error(capsys, "fer2013new.csv", "missing column(s) surprise")

    no_mapping = tmp_path / "no_mapping"
    no_mapping.mkdir()
    (no_mapping / "fer2013new.csv").write_bytes((ferplus_dir / "fer2013new.csv").read_bytes())
    assert main([*train, "--ferplus", str(no_mapping)]) == 2
    _one_error(capsys, "fer2013_jpg_to_ferplus_row.csv")

    assert main(["train", "--data", str(ckplus_dir), "--labels", "ferplus-votes", "--ferplus",
                 str(ferplus_dir), "--out", str(tmp_path / "ck")]) == 2
    _one_error(capsys, "FER2013 only", "ckplus")
    with pytest.raises(ConfigError, match="soft_label_weight"):
        TrainConfig(soft_label_weight=1.5)
    with pytest.raises(ConfigError, match="unknown labels"):
        load_dataset(fer2013_small, labels="ferplus")
