"""Epoch playback operators (animate epochs, render video); see blender/playback.py."""

from __future__ import annotations

CLASSES: tuple = ()
