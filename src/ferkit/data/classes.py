"""Canonical emotion names, so "anger", "Angry" and "angry" are one class in every dataset."""

from __future__ import annotations

from collections.abc import Iterable

# FER2013's label order, then contempt (CK+, FER+). Label indices follow this order.
CANONICAL_ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")

_SYNONYMS = {
    "angry": ("anger", "mad"),
    "disgust": ("disgusted", "disgusting"),
    "fear": ("fearful", "scared", "afraid"),
    "happy": ("happiness", "joy", "happily"),
    "sad": ("sadness", "unhappy"),
    "surprise": ("surprised", "suprise", "suprised"),
    "neutral": ("neutrality",),
    "contempt": ("contemptuous",),
}
_CANONICAL = {name: name for name in CANONICAL_ORDER} | {
    synonym: name for name, synonyms in _SYNONYMS.items() for synonym in synonyms
}


def canonical_name(name: str) -> str:
    """The canonical emotion for `name` (case-insensitive synonyms); other names come back lowercased."""
    key = name.strip().lower()
    return _CANONICAL.get(key, key)


def is_emotion(name: str) -> bool:
    return canonical_name(name) in CANONICAL_ORDER


def order_classes(names: Iterable[str]) -> list[str]:
    """Distinct canonical names: emotions in CANONICAL_ORDER, then any other names sorted."""
    found = {canonical_name(n) for n in names}
    known = [n for n in CANONICAL_ORDER if n in found]
    return known + sorted(found - set(known))
