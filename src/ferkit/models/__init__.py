"""Model architectures, model files and the resolver. Importing this package registers every model."""

from . import fast_fer, resnet_fer, seed_cnn, seed_dropout_cnn, vgg_fer  # noqa: F401  (registration)
from .classifier import FaceClassifier
from .registry import create_model, list_models, register_model
from .resolver import ResolvedModel, load_classifier, resolve

__all__ = ["FaceClassifier", "ResolvedModel", "create_model", "list_models", "load_classifier",
           "register_model", "resolve"]
