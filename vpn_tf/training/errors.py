"""The error every training-side failure raises: a message naming what is wrong, for the command lines to print."""

from __future__ import annotations


class TrainingError(RuntimeError):
    """Training cannot continue (non-finite loss, incompatible checkpoint, unusable workdir)."""
