"""Package discovery (the rest of the metadata is in pyproject.toml).

setuptools finds the `vpn_tf` packages; the repository's top-level `datasets/` folder (data builders and readers,
which the commands need) is installed inside the package as `vpn_tf.datasets`, never as a top-level `datasets`,
which would shadow Hugging Face's `datasets` in a user's environment.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["vpn_tf", "vpn_tf.*"]), "vpn_tf.datasets"],
    package_dir={"vpn_tf.datasets": "datasets"},
)
