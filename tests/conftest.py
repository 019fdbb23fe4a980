"""Test-wide settings: Qt offscreen (before any Qt import), deterministic CPU torch."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
