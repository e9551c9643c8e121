"""A registry of model architectures, in the manner of timm: one small file per model."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..errors import ConfigError

ModelFactory = Callable[..., nn.Module]
_MODELS: dict[str, ModelFactory] = {}


def register_model(factory: ModelFactory) -> ModelFactory:
    """Decorator: register `factory(num_classes, in_size, in_channels) -> nn.Module` by its name."""
    name = factory.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} registered twice")
    _MODELS[name] = factory
    return factory


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(
    name: str, num_classes: int = 7, in_size: int = 48, in_channels: int = 1, **kwargs
) -> nn.Module:
    """Build a registered model. Its forward takes N×C×H×W floats and returns N×num_classes logits."""
    try:
        factory = _MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None
    return factory(num_classes=num_classes, in_size=in_size, in_channels=in_channels, **kwargs)
