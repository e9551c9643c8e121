"""Training configuration: one dataclass, the single declaration of every training option."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from .augment import AugmentConfig
from .errors import ConfigError


@dataclass
class TrainConfig:
    data: str = ""  # dataset path, recorded so that --resume and evaluate find it again
    data_format: str = "auto"
    max_per_class: int = 0  # keep at most this many images per class and split (quick runs); 0 = all
    model: str = "seed_cnn"
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    label_smoothing: float = 0.0
    scheduler: str = "cosine"  # cosine | plateau | none
    warmup_epochs: int = 0
    min_lr: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    early_stopping: int = 0  # stop after this many epochs without a better val accuracy; 0 = never
    image_size: int = 48
    val_fraction: float = 0.1  # used only when the data brings no validation split of its own
    test_fraction: float = 0.2  # used only when the data brings no test split of its own
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16
    threads: int = 0  # 0 = all cores
    ema_decay: float = 0.0  # keep an exponential moving average of the weights (e.g. 0.999); validate and save it
    teacher: str = ""  # model file (or "default", the bundled one) whose predictions are a second target
    distill_weight: float = 0.5  # loss = (1 - w) · cross-entropy(labels) + w · T² · KL(teacher ‖ model)
    distill_temperature: float = 1.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**self.augment)
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; use adam, adamw or sgd")
        if self.scheduler not in ("cosine", "plateau", "none"):
            raise ConfigError(f"unknown scheduler {self.scheduler!r}; use cosine, plateau or none")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(f"epochs and batch size must be ≥ 1 and the learning rate > 0 (got epochs {self.epochs}, "
                              f"batch size {self.batch_size}, learning rate {self.lr:g})")
        if self.threads < 0:
            raise ConfigError(f"threads must be ≥ 0 (0 = all cores), got {self.threads}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1) (0 = no EMA), got {self.ema_decay:g}")
        if not 0.0 <= self.distill_weight <= 1.0 or self.distill_temperature <= 0:
            raise ConfigError(f"distill weight must be in [0, 1] and temperature > 0 (got {self.distill_weight:g}, "
                              f"{self.distill_temperature:g})")

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})
