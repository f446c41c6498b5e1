"""Progress output of the training loop and evaluation (stderr, so stdout keeps the results)."""

from __future__ import annotations

import sys


def log(message, progress):
    if progress:
        print(message, file=sys.stderr, flush=True)


def progress_bar(total, desc, enabled, initial=0):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, initial=initial, disable=not enabled, file=sys.stderr, dynamic_ncols=True)
