"""Training configuration: one dataclass, the single declaration of every training option."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from .atomic import write_text
from .augment import AugmentConfig
from .data import FORMATS, LABEL_MODES
from .errors import ConfigError
from .options import build, merge, option, read_recipe, recipe_text

DISTILL_VIEWS = ("augmented", "clean")  # what a teacher sees (TrainConfig.distill_view)


@dataclass
class TrainConfig:
    """Every training option. Each field is also a `ferkit train` flag and a key of a recipe file."""

    data: str = option("", "dataset folder, CSV or .npz pack (recorded so --resume and evaluate find it)")
    data_format: str = option("auto", "dataset layout (auto: detect)", flag="--format",
                              choices=("auto", *FORMATS))
    labels: str = option("dataset", "targets: the dataset's own labels, or for FER2013 the FER+ votes: their "
                         "majority, or the vote distribution (accuracy against the majority); or "
                         "fer2013+ferplus-votes: FER2013's labels mixed with the votes, every image kept, "
                         "selection and accuracy on FER2013's own labels", choices=LABEL_MODES)
    ferplus: str = option("", "FER+ folder with fer2013new.csv (and fer2013_jpg_to_ferplus_row.csv for the "
                          "jpg layout); default: the data's folder, then ferplus/ beside it", metavar="DIR")
    add_train: list[str] = option(help="more datasets whose training part joins the training data (e.g. "
                                  "CK+48 beside FER2013): each is split as its kind is (CK+ by subject) and "
                                  "only its training split is added; selection and report stay on --data; "
                                  "images of classes --data lacks are dropped", metavar="DATA",
                                  default_factory=list)
    max_per_class: int = option(0, "keep at most this many images per class and split, "
                                "for quick runs (0 = all)")
    model: str = option("seed_cnn", "architecture (see `ferkit models`)")
    init: str = option("", "fine-tune: start from these weights ('default', a .safetensors file or a run "
                       "directory) instead of random ones; same architecture and input size (other classes: "
                       "a new classifier head)",
                       metavar="MODEL")
    epochs: int = option(30, "epochs; with --resume: extend the run to this many")
    batch_size: int = option(64, "images per batch")
    optimizer: str = option("adam", "optimiser", choices=("adam", "adamw", "sgd"))
    lr: float = option(1e-3, "learning rate; with --resume: the learning rate of the extension")
    weight_decay: float = option(0.0, "weight decay")
    momentum: float = option(0.9, "momentum (sgd only)")
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy")
    soft_label_weight: float = option(1.0, "with --labels ferplus-votes: target = w · vote distribution + "
                                      "(1 - w) · majority label (1 = the votes alone); with "
                                      "fer2013+ferplus-votes: w · votes + (1 - w) · FER2013 label (images "
                                      "without usable votes: the FER2013 label alone)")
    scheduler: str = option("cosine", "learning-rate schedule", choices=("cosine", "plateau", "none"))
    warmup_epochs: int = option(0, "epochs of linear warm-up before the cosine schedule")
    min_lr: float = option(0.0, "learning rate at the end of the cosine schedule")
    plateau_factor: float = option(0.5, "plateau schedule: multiply the learning rate by this")
    plateau_patience: int = option(3, "plateau schedule: epochs without a better validation loss first")
    early_stopping: int = option(0, "stop after this many epochs without a better validation accuracy "
                                 "(0 = off)", metavar="PATIENCE")
    image_size: int = option(48, "input size in pixels (48 or 64)")
    val_fraction: float = option(0.1, "share held out for selection when the data brings no validation split")
    test_fraction: float = option(0.2, "share held out for the report when the data brings no test split")
    seed: int = option(0, "random seed (weights, batch order, augmentation)")
    device: str = option("auto", "auto, cpu or cuda")
    precision: str = option("auto", "auto: bf16 where the hardware runs it natively, else fp32",
                            choices=("auto", "fp32", "bf16"))
    threads: int = option(0, "CPU threads (0 = all cores)")
    ema_decay: float = option(0.0, "validate and save an exponential moving average of the weights "
                              "(e.g. 0.999; 0 = off)", flag="--ema", metavar="DECAY")
    teacher: list[str] = option(help="knowledge distillation: a trained model (.safetensors, run directory "
                                "or 'default') whose predictions are a second target; several models "
                                "teach as an ensemble (the mean of their probabilities)", metavar="MODEL",
                                default_factory=list)
    distill_weight: float = option(0.5, "loss = (1 - w) · cross-entropy + w · T² · KL(teacher ‖ model)")
    distill_temperature: float = option(1.0, "softmax temperature T of the distillation term")
    distill_view: str = option("augmented", "what the teacher sees: 'augmented' (the model's batch) or "
                               "'clean' (the same flips, turns and shifts without the photo-shift "
                               "degradations and erasing)", choices=DISTILL_VIEWS)
    augment: AugmentConfig = option(help="augmentation", default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if isinstance(self.teacher, str):  # one model, as recipes and runs before ensembles wrote it
            self.teacher = [self.teacher] if self.teacher else []
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**self.augment)
        for name, allowed in (("optimizer", ("adam", "adamw", "sgd")),
                              ("scheduler", ("cosine", "plateau", "none")),
                              ("precision", ("auto", "fp32", "bf16")), ("data_format", ("auto", *FORMATS)),
                              ("labels", LABEL_MODES), ("distill_view", DISTILL_VIEWS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"unknown {name} {getattr(self, name)!r}; use {', '.join(allowed)}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(f"epochs and batch size must be ≥ 1 and the learning rate > 0 (got epochs "
                              f"{self.epochs}, batch size {self.batch_size}, learning rate {self.lr:g})")
        for name in ("threads", "max_per_class", "early_stopping", "warmup_epochs", "weight_decay", "min_lr"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        for name in ("val_fraction", "test_fraction"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if not 8 <= self.image_size <= 512:
            raise ConfigError(f"image_size must be between 8 and 512 pixels, got {self.image_size}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing:g}")
        if not 0.0 <= self.soft_label_weight <= 1.0:
            raise ConfigError(f"soft_label_weight must be in [0, 1], got {self.soft_label_weight:g}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1) (0 = no EMA), got {self.ema_decay:g}")
        if not 0.0 <= self.distill_weight <= 1.0 or self.distill_temperature <= 0:
            raise ConfigError(f"distill weight must be in [0, 1] and temperature > 0 (got "
                              f"{self.distill_weight:g}, {self.distill_temperature:g})")
        if self.distill_view == "clean" and not self.teacher:
            raise ConfigError("distill_view 'clean' is what a teacher sees; give one with --teacher")
        if self.distill_view == "clean" and self.augment.mixes:
            raise ConfigError("distill_view 'clean' cannot be combined with mixup or cutmix: the teacher "
                              "would see unmixed faces")

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        """From a run's config.json: keys this version does not know are left out."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def load_recipe(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """A TrainConfig from a YAML/JSON recipe file (a run's config.json is one), `overrides` on top."""
    return build(TrainConfig, merge(read_recipe(path), overrides or {}), where=str(path))


def save_recipe(cfg: TrainConfig, path: str | Path) -> Path:
    """Write `cfg` as a recipe (YAML for .yaml/.yml, else JSON), atomically."""
    path = Path(path)
    write_text(path, recipe_text(cfg, "yaml" if path.suffix.lower() in (".yaml", ".yml") else "json"))
    return path
