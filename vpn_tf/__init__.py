"""vpn_tf: Video Pixel Networks (Kalchbrenner et al., ICML 2017) in TensorFlow 2 / Keras 3."""

from vpn_tf import distributions, layers
from vpn_tf.config import VPNConfig
from vpn_tf.models.vpn import VideoPixelNetwork, build_model
from vpn_tf.presets import get_config, preset_names

__version__ = "0.1.0"

__all__ = [
    "VPNConfig",
    "VideoPixelNetwork",
    "build_model",
    "distributions",
    "get_config",
    "layers",
    "preset_names",
]
