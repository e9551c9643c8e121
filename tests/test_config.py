"""One training config: flags from TrainConfig, recipe files, and the round trip flags → file → flags."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import pytest

from ferkit.augment import AugmentConfig
from ferkit.cli import build_parser, main, train_config
from ferkit.config import TrainConfig, load_recipe, save_recipe
from ferkit.errors import ConfigError
from ferkit.options import to_args

ROOT = Path(__file__).resolve().parents[1]


def config_from(*argv: str) -> TrainConfig:
    return train_config(build_parser().parse_args(["train", *argv]))


def test_every_option_is_a_flag_with_help():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    dests = {a.dest: a for a in train._actions}
    for f in fields(TrainConfig):
        if f.name != "augment":
            assert f.name in dests and dests[f.name].help, f.name
    for f in fields(AugmentConfig):
        assert f"augment.{f.name}" in dests and dests[f"augment.{f.name}"].help, f.name


def test_flags_not_given_keep_the_dataclass_defaults():
    assert config_from("--data", "d") == TrainConfig(data="d")


def test_the_flags_users_know_still_work():
    cfg = config_from("--data", "d", "--format", "folders", "--ema", "0.99", "--shift", "0.2", "--no-flip",
                      "--erasing", "0.3", "--epochs", "7", "--lr", "0.01", "--early-stopping", "4")
    assert ((cfg.data_format, cfg.ema_decay, cfg.epochs, cfg.lr, cfg.early_stopping)
            == ("folders", 0.99, 7, 0.01, 4))
    assert cfg.augment == AugmentConfig(width_shift=0.2, height_shift=0.2, horizontal_flip=False, erasing=0.3)
    off = config_from("--data", "d", "--no-augment").augment
    assert not off.has_affine and not off.horizontal_flip and off.erasing == 0


def test_no_augment_turns_off_the_photo_shift_transforms_of_a_recipe_too(tmp_path):
    on = AugmentConfig(aspect=0.2, low_res=0.3, blur=0.3, noise=0.3, brightness=0.1, contrast=0.2, gamma=0.2,
                       jpeg=0.3, mixup=0.2, cutmix=0.5)
    path = save_recipe(TrainConfig(data="d", augment=on), tmp_path / "r.yaml")
    off = config_from("--config", str(path), "--no-augment").augment
    assert not off.has_affine and not off.has_pixel_transforms and not off.mixes
    assert (off.low_res, off.blur, off.erasing, off.horizontal_flip) == (0, 0, 0, False)


def test_a_single_shift_flag_beats_the_shared_one():
    cfg = config_from("--data", "d", "--shift", "0.2", "--height-shift", "0.05")
    assert (cfg.augment.width_shift, cfg.augment.height_shift) == (0.2, 0.05)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_flags_file_flags(tmp_path, suffix):
    cfg = config_from("--data", "d", "--model", "fast_fer", "--optimizer", "adamw", "--lr", "0.002",
                      "--weight-decay", "0.05", "--label-smoothing", "0.1", "--erasing", "0.25", "--no-flip",
                      "--ema", "0.999", "--teacher", "default", "--distill-weight", "0.7", "--rotation", "15",
                      "--labels", "fer2013+ferplus-votes", "--soft-label-weight", "0.5", "--aspect", "0.15",
                      "--low-res", "0.3", "--low-res-scale", "0.4", "--blur", "0.25", "--blur-sigma", "1.2",
                      "--noise", "0.3", "--noise-sigma", "0.03", "--brightness", "0.1", "--contrast", "0.2",
                      "--gamma", "0.25", "--jpeg", "0.3", "--jpeg-quality", "35", "--mixup", "0.2",
                      "--cutmix", "1.0", "--add-train", "ck", "own photos")
    path = save_recipe(cfg, tmp_path / f"recipe{suffix}")
    assert load_recipe(path) == cfg
    assert config_from("--config", str(path)) == cfg
    assert config_from(*to_args(cfg)) == cfg
    assert (cfg.augment.jpeg_quality, cfg.augment.cutmix, cfg.labels) == (35, 1.0, "fer2013+ferplus-votes")
    assert cfg.add_train == ["ck", "own photos"]


def test_flags_override_the_recipe(tmp_path):
    path = save_recipe(TrainConfig(data="d", epochs=50, lr=0.002), tmp_path / "r.yaml")
    cfg = config_from("--config", str(path), "--epochs", "3", "--zoom", "0.2")
    assert (cfg.epochs, cfg.lr, cfg.augment.zoom, cfg.data) == (3, 0.002, 0.2, "d")


def test_print_config_is_a_recipe(tmp_path, capsys):
    assert main(["train", "--data", "d", "--model", "fast_fer", "--epochs", "9", "--print-config"]) == 0
    (tmp_path / "printed.yaml").write_text(capsys.readouterr().out)
    assert load_recipe(tmp_path / "printed.yaml") == TrainConfig(data="d", model="fast_fer", epochs=9)


def test_a_run_config_json_is_a_recipe(tmp_path):
    cfg = TrainConfig(data="d", epochs=4, augment=AugmentConfig(zoom=(0.9, 1.2)))
    save_recipe(cfg, tmp_path / "config.json")
    assert load_recipe(tmp_path / "config.json") == replace(cfg, augment=AugmentConfig(zoom=(0.9, 1.2)))


@pytest.mark.parametrize("bundled, recipe", [("default", "default.yaml"),
                                             ("wild", "wild-resnet-teacher.yaml")])
def test_bundled_model_recipe_reproduces_its_recorded_config(bundled, recipe):
    shipped = json.loads((ROOT / f"src/ferkit/pretrained/{bundled}.json").read_text())["extra"]["config"]
    assert load_recipe(ROOT / "configs" / recipe) == TrainConfig.from_dict(shipped)


def test_teacher_recipe_is_the_model_card_command():
    command = ("--data ../shared/datasets/fer2013 --model fast_fer --epochs 60 --optimizer adamw --lr 2e-3 "
               "--weight-decay 0.05 --label-smoothing 0.1 --warmup-epochs 2 --erasing 0.25").split()
    assert load_recipe(ROOT / "configs/default-teacher.yaml") == config_from(*command)


@pytest.mark.parametrize("text, fragment", [
    ("lr_rate: 0.1\n", "unknown option 'lr_rate'"),
    ("epochs: many\n", "option epochs must be int"),
    ("epochs: 2.5\n", "option epochs must be int"),
    ("augment: 3\n", "option augment must be a mapping"),
    ("augment:\n  spin: 3\n", "unknown option 'spin'"),
    ("- 1\n- 2\n", "a recipe is a mapping"),
    ("epochs: [1\n", "not a readable recipe"),
    ("optimizer: rmsprop\n", "unknown optimizer 'rmsprop'"),
    ("add_train: [1, 2]\n", "option add_train must be list"),
    ("add_train: 3\n", "option add_train must be list"),
])
def test_bad_recipe_is_one_error_line(tmp_path, capsys, text, fragment):
    (tmp_path / "r.yaml").write_text(text)
    assert main(["train", "--config", str(tmp_path / "r.yaml"), "--data", "d",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ferkit: error:") and fragment in err[0], err
    assert not (tmp_path / "o").exists()


def test_missing_recipe_file(tmp_path):
    with pytest.raises(ConfigError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.yaml")


def test_resume_warns_about_options_it_ignores(tmp_path, capsys):
    with pytest.warns(UserWarning, match=r"--resume keeps the run's own config.json.*ignored: --batch-size"):
        assert main(["train", "--resume", str(tmp_path / "none"), "--batch-size", "8", "--epochs", "9"]) == 2
    assert "not a ferkit run directory" in capsys.readouterr().err


def test_wild_finetune_recipe_is_its_command_line():
    command = ("--data ../shared/datasets/fer2013 --labels fer2013+ferplus-votes --soft-label-weight 0.5 "
               "--model fast_fer --init default --epochs 6 --optimizer adamw --lr 5e-4 --weight-decay 0.05 "
               "--warmup-epochs 1 --erasing 0.25 --aspect 0.15 --low-res 0.3 --low-res-scale 0.35 "
               "--blur 0.25 --blur-sigma 1.2 --noise 0.25 --noise-sigma 0.03 --brightness 0.1 --contrast 0.2 "
               "--gamma 0.2 --jpeg 0.25 --jpeg-quality 30").split()
    assert load_recipe(ROOT / "configs/wild-finetune.yaml") == config_from(*command)


@pytest.mark.parametrize("recipe", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_loads(recipe):
    cfg = load_recipe(recipe)
    assert isinstance(cfg, TrainConfig) and cfg.epochs >= 1 and cfg.model
