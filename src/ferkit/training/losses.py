"""Loss terms the trainer composes onto cross-entropy: `term(loss, logits, x) -> loss`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

LossTerm = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class SupportsLogits(Protocol):
    def logits(self, x: torch.Tensor) -> torch.Tensor: ...


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(teacher / T) ‖ softmax(model / T)); Hinton et al.'s T² keeps gradients comparable."""
    t = temperature
    return nn.functional.kl_div(torch.log_softmax(logits / t, 1), torch.log_softmax(teacher_logits / t, 1),
                                reduction="batchmean", log_target=True) * t * t


class Distillation:
    """(1 - weight) · loss + weight · distillation_loss. The teacher sees the batch the trainer passes: the
    model's augmented batch, or its clean view (`TrainConfig.distill_view`)."""

    def __init__(self, teacher: SupportsLogits, weight: float, temperature: float) -> None:
        self.teacher, self.weight, self.temperature = teacher, weight, temperature

    def __call__(self, loss: torch.Tensor, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        soft = distillation_loss(logits, self.teacher.logits(x), self.temperature)
        return (1 - self.weight) * loss + self.weight * soft
