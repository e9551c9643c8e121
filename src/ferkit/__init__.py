"""ferkit: facial expression recognition with CNNs — datasets, training, evaluation, faces, inference."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Face", "Recognizer", "Results", "__version__"]


def __getattr__(name: str):
    # Lazy, so that `ferkit --help` and `import ferkit.data` do not pay for the whole stack.
    if name in ("Recognizer", "Face", "Results"):
        from . import predict

        return getattr(predict, name)
    raise AttributeError(f"module 'ferkit' has no attribute {name!r}")
