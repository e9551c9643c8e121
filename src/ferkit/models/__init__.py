"""Model architectures. Importing this package registers every model with `create_model`."""

from . import fast_fer, resnet_fer, seed_cnn, seed_dropout_cnn, vgg_fer  # noqa: F401  (registration)
from .registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
