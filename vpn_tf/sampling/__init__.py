"""Ancestral sampling from a VPN: frames in time order, pixels in raster order, colours R -> G -> B.

- `Sampler` (`sampler.py`): continuations, eager (`sample`) or as one graph (`sample_graph`, for exports).
- `method="naive"` (`reference.py`): the reference. For every dimension it reruns the whole teacher-forced decoder on
  the partly generated frame and reads the one conditional it needs (H * W * C decoder passes per frame).
- `method="cached"` (`cached.py`): the fast path. The encoder and ConvLSTM run once per frame (`temporal.py`); the
  decoder's own `forward` runs one pixel at a time from activation caches.
- `noise.py`: stateless noise keyed by the seed, frame and pixel, and drawing a dimension from its logits.

The baseline samples all pixels of a frame at once (its conditionals do not depend on the frame).
"""

from vpn_tf.sampling.cached import LOOPS, CachedDecoder
from vpn_tf.sampling.noise import draw, draw_from, draw_noise, frame_seed, pixel_noise
from vpn_tf.sampling.reference import baseline_frame, naive_frame
from vpn_tf.sampling.sampler import METHODS, Sampler, sample
from vpn_tf.sampling.temporal import TemporalState, frame_conditions, push_frame, recent_frames

__all__ = [
    "LOOPS",
    "METHODS",
    "CachedDecoder",
    "Sampler",
    "TemporalState",
    "baseline_frame",
    "draw",
    "draw_from",
    "draw_noise",
    "frame_conditions",
    "frame_seed",
    "naive_frame",
    "pixel_noise",
    "push_frame",
    "recent_frames",
    "sample",
]
