"""Data builders and readers for vpn_tf: MNIST (shipped), Moving MNIST, Robotic Pushing (real schema), simulated
pushing, and the shared TFRecord video format.

This folder is named like Hugging Face's `datasets` package. It is importable from a checkout of this repository
(`python train.py` and the tests put the repository root first on `sys.path`, so `import datasets` finds this folder
even where the other package is installed). `pip install .` installs it inside the package, as `vpn_tf.datasets`
(setup.py), never as a top-level `datasets`, so it cannot shadow the other package in a user's environment; its
modules import each other relatively, so they work under either name.
"""

import os as _os

ROOT = _os.path.dirname(_os.path.abspath(__file__))
REPO_ROOT = _os.path.dirname(ROOT)
