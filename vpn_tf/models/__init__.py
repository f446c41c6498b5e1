"""VPN encoders, decoders and the full model."""

from vpn_tf.models.baseline_decoder import BaselineDecoder
from vpn_tf.models.encoder import ResolutionPreservingEncoder
from vpn_tf.models.output_head import OutputHead
from vpn_tf.models.pixelcnn_decoder import PixelCNNDecoder
from vpn_tf.models.vpn import VideoPixelNetwork, build_model

__all__ = [
    "BaselineDecoder",
    "OutputHead",
    "PixelCNNDecoder",
    "ResolutionPreservingEncoder",
    "VideoPixelNetwork",
    "build_model",
]
