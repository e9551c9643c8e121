"""ferkit: facial expression recognition with CNNs — datasets, training, evaluation, faces, inference."""

__version__ = "0.1.0"
