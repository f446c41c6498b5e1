"""vpn_tf: Video Pixel Networks (Kalchbrenner et al., ICML 2017) in TensorFlow 2 / Keras 3.

The public names below load on first use (PEP 562), so that `import vpn_tf.config` or a command's `--help` does not
import TensorFlow, and a command can set TensorFlow's logging before it loads.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "VPNConfig": "vpn_tf.config",
    "VideoPixelNetwork": "vpn_tf.models.vpn",
    "build_model": "vpn_tf.models.vpn",
    "get_config": "vpn_tf.presets",
    "preset_names": "vpn_tf.presets",
}
_SUBMODULES = ("distributions", "layers")

__all__ = sorted([*_PUBLIC, *_SUBMODULES])


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"vpn_tf.{name}")
    else:
        raise AttributeError(f"module 'vpn_tf' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *__all__])
