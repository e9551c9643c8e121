"""CK+ (Extended Cohn-Kanade): CK+48 file names and the Kaggle CSV's label order."""

from __future__ import annotations

import re

# The Kaggle CK+ CSV (`ckextended.csv`): 0=anger, 1=disgust, 2=fear, 3=happiness, 4=sadness,
# 5=surprise, 6=neutral, 7=contempt, as canonical names.
CKPLUS_CSV_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")

_FILE_NAME = re.compile(r"^(S\d+)_\d+_\d+\.[a-z]+$", re.IGNORECASE)


def subject_of(file_name: str) -> str | None:
    """'S005_001_00000011.png' → 'S005' (CK+48's S<subject>_<sequence>_<frame>); None otherwise."""
    match = _FILE_NAME.match(file_name)
    return match.group(1).upper() if match else None
