"""benchmarks/label_agreement.py: the bound on two label sets' accuracies."""

from __future__ import annotations

import pytest

from script_loader import load_script


@pytest.fixture(scope="module")
def label_agreement():
    return load_script("benchmarks/label_agreement.py")


def test_floor_on_agreed_faces(label_agreement):
    assert label_agreement.floor_on_agreed(1.0, (0.7, 0.85)) == pytest.approx(0.775)  # one label set
    assert label_agreement.floor_on_agreed(0.656, (0.7, 0.85)) == pytest.approx(0.919, abs=1e-3)


def test_the_floor_is_tight(label_agreement):
    """A model right on exactly the floor's share of the agreed faces, and on every disagreed face right
    for one label set or the other, reaches the targets' sum and no more."""
    agree, targets = 0.6, (0.7, 0.85)
    r = label_agreement.floor_on_agreed(agree, targets)
    assert 2 * agree * r + (1 - agree) == pytest.approx(sum(targets))
