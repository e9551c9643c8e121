"""Face detection (MTCNN, Haar cascade) and face crops for expression recognition."""

from .crop import crop_face, crop_faces, detect_and_crop
from .detector import Detection, Detector, box_iou, create_detector, list_detectors, match_boxes, match_faces
from .framing import Framing
from .haar import HaarDetector
from .mtcnn import MTCNNDetector

__all__ = [
    "Detection",
    "Detector",
    "Framing",
    "HaarDetector",
    "MTCNNDetector",
    "box_iou",
    "create_detector",
    "crop_face",
    "crop_faces",
    "detect_and_crop",
    "list_detectors",
    "match_boxes",
    "match_faces",
]
