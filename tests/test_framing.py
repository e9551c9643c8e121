"""Face framing: the crop the classifier sees places a real face as FER2013 frames its faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ferkit.data.images import load_image
from ferkit.errors import ConfigError
from ferkit.faces import Detection, Framing, create_detector, crop_face, crop_faces
from ferkit.faces.framing import FER2013_BOX_MARGIN, FER2013_TEMPLATE, as_framing, landmark_matrix


@pytest.fixture(scope="module")
def mtcnn():
    return create_detector("mtcnn")


def _upscaled_with_context(gray: np.ndarray, factor: int = 4) -> np.ndarray:
    big = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    pad = big.shape[0]
    return np.stack([cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)] * 3, -1)


def test_landmark_framing_gives_back_the_fer2013_frame(fer2013_dir, mtcnn):
    """A FER2013 face shown 4× larger with context around it is framed back to about its own frame."""
    paths = sorted((fer2013_dir / "test" / "happy").glob("PublicTest_*.jpg"))[:12]
    scales, offsets = [], []
    for path in paths:
        big = _upscaled_with_context(load_image(path, mode="gray"))
        faces = mtcnn.detect(big)
        if not faces:
            continue
        matrix = Framing().matrix(faces[0].box, faces[0].landmarks, 48)
        scales.append(np.hypot(*matrix[:, 0]) * 4)  # 1 where the crop has the original frame's scale
        centre = matrix @ np.array([big.shape[1] / 2, big.shape[0] / 2, 1.0])  # the original frame's centre
        offsets.append(np.linalg.norm(centre - 24))
    assert len(scales) >= 8
    assert abs(np.median(scales) - 1) < 0.12 and np.median(offsets) < 3, (scales, offsets)
    old = Framing("box", 0.2).matrix(faces[0].box, None, 48)
    assert abs(np.hypot(*old[:, 0]) * 4 - 1) > abs(scales[-1] - 1)  # the old framing was further off


def test_landmark_matrix_maps_the_template_onto_itself():
    for size in (48, 64):
        matrix = landmark_matrix(FER2013_TEMPLATE * 100 + 7, size, align=True)
        mapped = (FER2013_TEMPLATE * 100 + 7) @ matrix[:, :2].T + matrix[:, 2]
        np.testing.assert_allclose(mapped, FER2013_TEMPLATE * size, atol=1e-9)


def test_zoom_shows_the_face_larger_about_the_template_centre():
    points = FER2013_TEMPLATE * 100 + 7
    plain, zoomed = landmark_matrix(points, 48, align=False), landmark_matrix(points, 48, False, zoom=1.25)
    assert zoomed[0, 0] == pytest.approx(plain[0, 0] * 1.25)
    centre = points.mean(0)
    mapped = centre @ zoomed[:, :2].T + zoomed[:, 2]
    np.testing.assert_allclose(mapped, FER2013_TEMPLATE.mean(0) * 48, atol=1e-9)
    with pytest.raises(ConfigError, match="zoom"):
        Framing(zoom=0)


def test_landmark_framing_follows_scale_and_shift_not_rotation_unless_aligned():
    angle = np.radians(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = (FER2013_TEMPLATE - 0.5) @ rotation.T * 200 + 300
    upright = landmark_matrix(points, 48, align=False)
    assert upright[0, 1] == 0 and upright[1, 0] == 0
    aligned = landmark_matrix(points, 48, align=True)
    np.testing.assert_allclose(points @ aligned[:, :2].T + aligned[:, 2], FER2013_TEMPLATE * 48, atol=1e-6)


def test_aligned_landmark_crop_levels_the_eyes(mtcnn, photos_dir):
    rgb = load_image(photos_dir / "angry_man.jpg", mode="rgb")
    h, w = rgb.shape[:2]
    tilted = cv2.warpAffine(rgb, cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0), (w, h),
                            borderMode=cv2.BORDER_REPLICATE)
    face = mtcnn.detect(tilted)[0]
    crop = crop_face(tilted, face, size=160, framing=Framing(align=True))
    again = mtcnn.detect(np.stack([crop] * 3, -1))
    (lx, ly), (rx, ry) = again[0].landmarks[:2]
    assert abs(np.degrees(np.arctan2(ry - ly, rx - lx))) < 5


def test_faces_without_landmarks_fall_back_to_the_box():
    image = np.arange(200 * 200, dtype=np.uint32).reshape(200, 200).astype(np.uint8)
    box = (50, 60, 110, 120)
    np.testing.assert_array_equal(crop_face(image, box, size=60, framing="landmarks"),
                                  crop_face(image, box, size=60, margin=FER2013_BOX_MARGIN))
    assert FER2013_BOX_MARGIN == Framing("box").margin


def test_as_framing_shorthands():
    assert as_framing() == Framing()
    assert as_framing(margin=0.2) == Framing("box", 0.2)
    assert as_framing("landmarks", 0.3, True) == Framing("landmarks", 0.3, True)
    with pytest.raises(ConfigError, match="unknown framing"):
        Framing("ellipse")
    with pytest.raises(ConfigError, match="margin must be > -1"):
        as_framing(margin=-1.0)
    with pytest.raises(ConfigError, match="either a Framing or margin"):
        as_framing(Framing(), margin=0.1)


def test_crops_of_an_rgb_frame_equal_crops_of_the_whole_frame_in_gray():
    # crop_faces converts only the parts of an RGB frame its crops read; nothing may change for that
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    gray = load_image(rgb, mode="gray")
    boxes = [(40, 30, 90, 80), (-30, -20, 25, 30), (140, 100, 200, 150), (-90, 10, -40, 60), (0, 0, 160, 120)]
    for framing in (Framing("box", -0.07), Framing("box", 0.6, align=True), Framing(align=True)):
        faces = []
        for x1, y1, x2, y2 in boxes:  # landmarks tilted, so that the aligned framing rotates
            where = np.array([[0.3, 0.4], [0.7, 0.3], [0.5, 0.6], [0.35, 0.8], [0.65, 0.75]])
            faces.append(Detection((x1, y1, x2, y2), 1.0, (x1, y1) + where * (x2 - x1, y2 - y1)))
        for size in (48, 64):
            expected = np.stack([crop_face(gray, face, size, framing) for face in faces])
            np.testing.assert_array_equal(crop_faces(rgb, faces, size, framing), expected)
