"""Typed configuration for Video Pixel Networks, with the paper's presets.

One flat dataclass holds the model and the training settings so that every field can be overridden by name
(`vpn_tf.get_config("cpu_moving_mnist", hidden=48)` or `python train.py --hidden=48`). Presets are functions that
return a `VPNConfig`; variants override a base preset instead of copying it.

Reference: Kalchbrenner et al., "Video Pixel Networks", ICML 2017, §5.1 and §6.1.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

MODEL_KINDS = ("vpn", "baseline")
BLOCK_KINDS = ("rmb", "relu")
OUTPUT_KINDS = ("sigmoid", "softmax")
CONTEXT_WIRINGS = ("every_block", "every_layer")
DATASETS = ("moving_mnist", "robot_pushing", "pushing_sim")

NUM_INTENSITIES = 256  # 8-bit pixels: a softmax over 256 raw values, never 255.


@dataclasses.dataclass(frozen=True)
class VPNConfig:
    """Everything needed to build and train one VPN (or its baseline)."""

    name: str = "custom"
    """Preset name the config was derived from (informational)."""

    # --- Data layout -------------------------------------------------------------------------------------------
    dataset: str = "moving_mnist"
    """Which data pipeline trains this config: one of `DATASETS`."""
    image_size: int = 64
    """Frame height and width in pixels (square frames)."""
    channels: int = 1
    """Colour channels per pixel: 1 (grey, Moving MNIST) or 3 (RGB, ordered R, G, B)."""
    num_frames: int = 20
    """Frames per training sequence (context + predicted)."""
    context_frames: int = 10
    """Leading frames that are given; the model's likelihood covers only the frames after them."""
    eval_num_frames: int = 20
    """Frames per evaluation sequence (the pushing benchmark trains on 12 and evaluates on 20)."""
    data_dir: str = ""
    """Directory of the pushing data (push_train/, push_val/, push_testseen/, push_testnovel/); unused for Moving
    MNIST, which is generated from the shipped MNIST files."""

    # --- Architecture ------------------------------------------------------------------------------------------
    model: str = "vpn"
    """"vpn" (PixelCNN decoders, §3.2) or "baseline" (unmasked CNN decoders that do not see frame t, §3.3)."""
    block: str = "rmb"
    """Residual block kind: "rmb" (Eq. 4) or "relu" (bottleneck residual block of He et al. 2016)."""
    hidden: int = 128
    """c: channels inside the blocks; block inputs and outputs have 2c channels (§4.2)."""
    encoder_blocks: int = 8
    """k: residual blocks in the encoder (16 for the ReLU variant in the paper)."""
    decoder_blocks: int = 12
    """l: residual blocks in the decoder (24 for the ReLU variant in the paper)."""
    encoder_dilations: tuple[int, ...] = (1, 2, 4, 8)
    """Dilation scheme repeated over the encoder blocks (§4.3); (1,) means no dilation."""
    lstm_channels: int = 256
    """Channels of the convolutional LSTM."""
    lstm_kernel_size: int = 3
    """Kernel of the convolutional LSTM (not stated in the paper; 3x3 like every other spatial kernel)."""
    top_channels: int = 768
    """Channels of the topmost decoder layer before the output (768 Moving MNIST, 1536 pushing)."""
    first_kernel_size: int = 7
    """Kernel of the decoder's type-A masked input layer. Not stated in the paper; 7x7 as in PixelCNN."""
    context_wiring: str = "every_block"
    """How the ConvLSTM context enters the PixelCNN decoder (the paper does not say). "every_block": an unmasked
    `context_kernel_size` convolution of the context is added to the input of every decoder block and of the output
    head, as conditional PixelCNN (van den Oord et al. 2016) conditions every layer; the context depends on past
    frames only, so none of it needs hiding, and a kernel wider than 1 lets pixel (i, j) read the context right of
    and below it, which masked layers never pass up. "every_layer": "every_block" plus a 1x1 projection of the
    same context features added to the head's topmost layer, so each colour's logits read the context at the
    topmost layer's full per-colour width (masked layers give each colour a third of the channels; see
    `PixelCNNDecoder`). RESULTS.md measured both against a projection at the decoder's input only (no longer
    offered: it lost at equal budgets)."""
    context_kernel_size: int = 3
    """Kernel of the "every_block" context projections (odd; 1 means the context at the pixel only)."""
    decoder_past_frames: int = 0
    """Not in the paper (0, the default, is the paper's model). The decoder also reads the pixels of the last
    `decoder_past_frames` frames before the one it predicts, unmasked, concatenated to the ConvLSTM output it reads
    as its context (so they enter through the context projections, `context_kernel_size` wide). Why: at small
    widths the ConvLSTM state keeps where a digit is better than its shape (RESULTS.md); the last frames hold the
    shape at full resolution, and two of them hold the local motion. They depend on past frames only, so causality
    is untouched. Frames before the video's first are read as black."""
    output: str = "sigmoid"
    """"sigmoid": one logit per pixel against grey-level targets (Moving MNIST only, Eq. 5);
    "softmax": 256 logits per colour channel."""
    binarize_inputs: bool = False
    """Sigmoid (Moving MNIST) models only; training only. The network reads each training sequence as binary frames
    drawn pixel by pixel from its grey levels (Bernoulli(x / 255), a fresh draw per sequence of the stream, by the
    input pipeline: "dynamic binarisation"), while the loss stays Eq. 5 against the grey levels: with the
    conditionals computed from such a draw, that is an unbiased estimate of the expected negative log-likelihood of
    binary frames drawn from the grey levels (same lower bound, by Gibbs' inequality). Why: the sampler draws binary
    pixels and feeds them back within a frame (the pixels above and left) and as context frames; a network trained
    on grey inputs never saw such inputs. Not in the paper (it does not say what the network reads). Validation
    during training reads binary frames too (`validates_on_binary_frames`); `evaluate.py` feeds the grey frames
    (the paper's metric) unless told to read binary ones. RESULTS.md reports what it changes."""
    action_dim: int = 0
    """Size of the per-frame action vector (5 in the pushing benchmark); 0 disables action conditioning."""
    state_dim: int = 0
    """Size of the per-frame state vector (5 in the pushing benchmark); 0 disables state conditioning."""

    # --- Training ----------------------------------------------------------------------------------------------
    batch_size: int = 64
    """Global batch size in sequences (split across replicas)."""
    learning_rate: float = 3e-4
    """Initial RMSProp learning rate (3e-4 Moving MNIST, 1e-4 pushing)."""
    lr_decay_factor: float = 0.3
    """The learning rate is multiplied by this when validation likelihood flatlines."""
    plateau_patience: int = 3
    """Evaluations without improvement before the learning rate decays."""
    steps: int = 300_000
    """Total training steps."""
    eval_every: int = 1000
    """Steps between evaluations on the held-out split."""
    eval_sequences: int = 256
    """Held-out sequences per periodic evaluation."""
    checkpoint_every: int = 1000
    """Steps between checkpoints."""
    grad_clip_norm: float = 0.0
    """Global gradient-norm clip; 0 disables it (the paper does not mention clipping)."""
    remat: bool = False
    """Rematerialisation: keep only each residual block's input for the backward pass and recompute the block's
    inside there (`tf.recompute_grad`). Same gradients, a fraction of the activation memory, ~1 extra forward pass
    of the blocks; `python -m bench.memory --full` measures both. Not in the paper (a memory/compute trade-off)."""

    def __post_init__(self):
        validate(self)

    @property
    def num_classes(self) -> int:
        """K: logits per predicted dimension (1 for the sigmoid output, 256 for the softmax)."""
        return 1 if self.output == "sigmoid" else NUM_INTENSITIES

    @property
    def conditional(self) -> bool:
        """Whether the model is conditioned on per-frame action (and state) vectors."""
        return self.action_dim > 0 or self.state_dim > 0

    @property
    def condition_dim(self) -> int:
        """Width of the per-frame conditioning vector: [action, state]."""
        return self.action_dim + self.state_dim

    @property
    def validates_on_binary_frames(self) -> bool:
        """Whether training validates (and decays its learning rate) on binary frames drawn from the validation
        set's grey levels: runs reading binary frames (`binarize_inputs`). Grey runs validate on the grey frames
        (the paper's metric)."""
        return self.binarize_inputs

    @property
    def context_channels(self) -> int:
        """Channels of the context the decoder reads: the ConvLSTM output, plus the pixels of
        `decoder_past_frames` past frames."""
        return self.lstm_channels + self.decoder_past_frames * self.channels

    @property
    def dilations(self) -> tuple[int, ...]:
        """Per-encoder-block dilation rates: the scheme repeated over the blocks."""
        scheme = self.encoder_dilations
        return tuple(scheme[i % len(scheme)] for i in range(self.encoder_blocks))

    def replace(self, **overrides) -> VPNConfig:
        """A copy with `overrides` applied (validated); unknown names raise a ValueError listing the fields."""
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"Unknown config field(s) {unknown}. Valid fields: {sorted(field_names())}")
        overrides = dict(overrides)
        if "encoder_dilations" in overrides:
            overrides["encoder_dilations"] = tuple(int(d) for d in overrides["encoder_dilations"])
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["encoder_dilations"] = list(self.encoder_dilations)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> VPNConfig:
        d = dict(d)
        for name, default in REMOVED_FIELDS.items():  # training-only options that were measured and removed
            if name in d:
                if d.pop(name) != default:
                    raise ValueError(
                        f"The config sets {name}, an option this version no longer has (RESULTS.md, earlier "
                        f"findings); train with an earlier version or drop the field"
                    )
        unknown = sorted(set(d) - set(field_names()))
        if unknown:
            raise ValueError(f"Unknown config field(s) {unknown}. Valid fields: {sorted(field_names())}")
        if "context_wiring" not in d:
            raise ValueError(
                "The config has no context_wiring field: it was written before the field existed, for a decoder "
                f"this version no longer builds (the context at the decoder's input only). Choices: {CONTEXT_WIRINGS}"
            )
        if "encoder_dilations" in d:
            d["encoder_dilations"] = tuple(int(x) for x in d["encoder_dilations"])
        return cls(**d)

    def diff(self, other: VPNConfig, fields: tuple[str, ...] | None = None) -> dict:
        """{field: (self value, other value)} for the fields (default: all) where the two configs differ."""
        names = fields or field_names()
        return {n: (getattr(self, n), getattr(other, n)) for n in names if getattr(self, n) != getattr(other, n)}


# Training-only fields of earlier versions, with the value that meant "off": a run directory that has them at that
# value still loads.
REMOVED_FIELDS = {"binarize_fraction": 1.0, "train_context_frames": 0}

# Fields that determine the network's weights; a checkpoint is only compatible across configs equal on these.
ARCHITECTURE_FIELDS = (
    "image_size",
    "channels",
    "model",
    "block",
    "hidden",
    "encoder_blocks",
    "decoder_blocks",
    "encoder_dilations",
    "lstm_channels",
    "lstm_kernel_size",
    "top_channels",
    "first_kernel_size",
    "context_wiring",
    "context_kernel_size",
    "decoder_past_frames",
    "output",
    "action_dim",
    "state_dim",
)


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(VPNConfig))


def _check(condition: bool, message: str):
    if not condition:
        raise ValueError(message)


def validate(c: VPNConfig) -> None:
    """Raises a ValueError naming the offending field and value."""
    _check(c.model in MODEL_KINDS, f"model must be one of {MODEL_KINDS}. Received: model={c.model!r}")
    _check(c.block in BLOCK_KINDS, f"block must be one of {BLOCK_KINDS}. Received: block={c.block!r}")
    _check(c.output in OUTPUT_KINDS, f"output must be one of {OUTPUT_KINDS}. Received: output={c.output!r}")
    _check(c.dataset in DATASETS, f"dataset must be one of {DATASETS}. Received: dataset={c.dataset!r}")
    _check(
        c.context_wiring in CONTEXT_WIRINGS,
        f"context_wiring must be one of {CONTEXT_WIRINGS}. Received: context_wiring={c.context_wiring!r}",
    )
    _check(
        c.context_kernel_size >= 1 and c.context_kernel_size % 2 == 1,
        f"context_kernel_size must be a positive odd int. Received: context_kernel_size={c.context_kernel_size}",
    )
    _check(
        c.decoder_past_frames >= 0,
        f"decoder_past_frames must be >= 0. Received: decoder_past_frames={c.decoder_past_frames}",
    )
    _check(
        c.channels in (1, 3),
        f"The decoder is built for 1 (grey) or 3 (R, G, B) colour channels. Received: channels={c.channels}",
    )
    _check(
        not (c.output == "sigmoid" and c.channels != 1),
        "The sigmoid output models grey-level targets (Moving MNIST only) and needs channels=1. "
        f"Received: output='sigmoid', channels={c.channels}",
    )
    _check(
        not (c.binarize_inputs and c.output != "sigmoid"),
        "binarize_inputs draws binary frames from grey levels read as probabilities (the sigmoid output, Eq. 5); "
        f"a softmax model reads its 256 intensities as they are. Received: binarize_inputs=True, output={c.output!r}",
    )
    for name in ("image_size", "hidden", "encoder_blocks", "lstm_channels", "top_channels", "batch_size", "steps"):
        _check(getattr(c, name) >= 1, f"{name} must be >= 1. Received: {name}={getattr(c, name)}")
    _check(c.decoder_blocks >= 0, f"decoder_blocks must be >= 0. Received: decoder_blocks={c.decoder_blocks}")
    _check(
        c.context_frames >= 1,
        f"context_frames must be >= 1 (the first frame has no context). Received: context_frames={c.context_frames}",
    )
    for name in ("num_frames", "eval_num_frames"):
        _check(
            getattr(c, name) > c.context_frames,
            f"{name} must exceed context_frames={c.context_frames} so that some frame is predicted. "
            f"Received: {name}={getattr(c, name)}",
        )
    for name in ("first_kernel_size", "lstm_kernel_size"):
        k = getattr(c, name)
        _check(k >= 1 and k % 2 == 1, f"{name} must be odd and positive (centred masks). Received: {name}={k}")
    _check(
        len(c.encoder_dilations) >= 1 and all(int(d) >= 1 for d in c.encoder_dilations),
        f"encoder_dilations must be a non-empty tuple of positive ints. Received: {c.encoder_dilations}",
    )
    _check(
        c.action_dim >= 0 and c.state_dim >= 0,
        f"action_dim/state_dim must be >= 0. Received: {c.action_dim}, {c.state_dim}",
    )
    _check(c.learning_rate > 0, f"learning_rate must be > 0. Received: learning_rate={c.learning_rate}")
    _check(0 < c.lr_decay_factor <= 1, f"lr_decay_factor must be in (0, 1]. Received: {c.lr_decay_factor}")


# ------------------------------------------------------------------------------------------------------------------
# Presets
# ------------------------------------------------------------------------------------------------------------------

_PRESETS: dict[str, Callable[[], VPNConfig]] = {}


def preset(fn: Callable[[], VPNConfig]) -> Callable[[], VPNConfig]:
    _PRESETS[fn.__name__] = fn
    return fn


def preset_names() -> tuple[str, ...]:
    return tuple(_PRESETS)


def get_config(name: str, **overrides) -> VPNConfig:
    """The preset `name` with `overrides` applied.

    Raises:
        ValueError: an unknown preset (the message lists the choices) or an unknown/invalid field.
    """
    if name not in _PRESETS:
        raise ValueError(f"Unknown preset {name!r}. Choices: {', '.join(_PRESETS)}")
    cfg = _PRESETS[name]()
    return cfg.replace(name=name, **overrides) if overrides else cfg.replace(name=name)


@preset
def moving_mnist_paper() -> VPNConfig:
    """§5.1: VPN (RMB, dilation), c=128, 8 encoder / 12 decoder RMBs, ConvLSTM 256, top 768, batch 64, RMSProp 3e-4."""
    return VPNConfig(
        dataset="moving_mnist",
        channels=1,
        output="sigmoid",
        num_frames=20,
        context_frames=10,
        eval_num_frames=20,
        top_channels=768,
        learning_rate=3e-4,
        steps=300_000,
    )


@preset
def moving_mnist_paper_rmb_no_dilation() -> VPNConfig:
    """Table 2: VPN (RMB, No Dilation)."""
    return moving_mnist_paper().replace(encoder_dilations=(1,))


@preset
def moving_mnist_paper_relu_dilation() -> VPNConfig:
    """Table 2: VPN (Relu, Dilation): ReLU blocks, doubled block counts (16 / 24)."""
    return moving_mnist_paper().replace(block="relu", encoder_blocks=16, decoder_blocks=24)


@preset
def moving_mnist_paper_relu_no_dilation() -> VPNConfig:
    """Table 2: VPN (Relu, No Dilation)."""
    return moving_mnist_paper_relu_dilation().replace(encoder_dilations=(1,))


@preset
def moving_mnist_paper_baseline() -> VPNConfig:
    """Table 1: baseline model (same encoders and core, unmasked decoders that do not see frame t)."""
    return moving_mnist_paper().replace(model="baseline")


@preset
def robot_pushing_paper() -> VPNConfig:
    """§6.1: RGB softmax VPN (RMB, dilation), top 1536, actions and states (5 each), 12-frame training
    subsequences with 2 context frames, 20-frame evaluation, RMSProp 1e-4, 275k steps.

    Colour groups with room (our choice; the paper does not say how the context enters): every masked layer gives
    each colour a third of its channels, so at small widths the red logits read the context through a narrow
    group (~11 of 32 channels at c = 16). `context_wiring="every_layer"` adds the context to the head's topmost
    layer as well, unmasked, at its full per-colour width. RESULTS.md, simulated pushing at 32 x 32 and c = 16,
    equal budgets: with the context in every block only, the VPN lost to the baseline by 0.20 nats/dim (red 0.32
    worse); with "every_layer", by 0.02 (within one standard error). Widening instead (c = 32) learned faster per
    step but took twice as long per step and lost at equal time, so the CPU presets keep c = 16."""
    return VPNConfig(
        dataset="robot_pushing",
        channels=3,
        output="softmax",
        context_wiring="every_layer",
        num_frames=12,
        context_frames=2,
        eval_num_frames=20,
        top_channels=1536,
        action_dim=5,
        state_dim=5,
        learning_rate=1e-4,
        steps=275_000,
    )


@preset
def robot_pushing_paper_rmb_no_dilation() -> VPNConfig:
    """Table 3: VPN (RMB, No Dilation)."""
    return robot_pushing_paper().replace(encoder_dilations=(1,))


@preset
def robot_pushing_paper_relu_dilation() -> VPNConfig:
    """Table 3: VPN (Relu, Dilation)."""
    return robot_pushing_paper().replace(block="relu", encoder_blocks=16, decoder_blocks=24)


@preset
def robot_pushing_paper_relu_no_dilation() -> VPNConfig:
    """Table 3: VPN (Relu, No Dilation)."""
    return robot_pushing_paper_relu_dilation().replace(encoder_dilations=(1,))


@preset
def robot_pushing_paper_baseline() -> VPNConfig:
    """Table 3: baseline model."""
    return robot_pushing_paper().replace(model="baseline")


# What the CPU-scale presets share: full 64 x 64 frames and the benchmarks' frame protocol, small widths.
_CPU_SCALE = dict(
    hidden=16,
    encoder_blocks=4,
    decoder_blocks=4,
    lstm_channels=32,
    first_kernel_size=5,
    batch_size=4,
    learning_rate=1e-3,
    steps=1000,
    eval_every=250,
    eval_sequences=64,
    checkpoint_every=100,
    plateau_patience=2,
)


@preset
def cpu_moving_mnist() -> VPNConfig:
    """Moving MNIST at full 64x64 resolution and the paper's 10 + 10 frames, shrunk to learn within an hour on 2 CPU
    cores.

    Sizing: the paper's widths cost ~123 G multiply-adds per frame (`vpn_tf.cost.forward_macs_per_frame`), tens of
    seconds per training sequence here. With c=16, 4 encoder blocks (dilations 1, 2, 4, 8, so the receptive field
    still covers a digit's motion), 4 decoder blocks, ConvLSTM 32 and top 64 it is ~1.0 G per frame (~127x less;
    0.96 G before the decoder read the context in every block).
    `python -m bench.train_step` measured a float32 training step of 4 sequences at 3.2 s on our 2-core machine
    (1.25 sequences/s) when RESULTS.md was trained, 2.5-3.2 s since the 2026-11-26 speedups (BENCHMARKS.md), so an
    hour is ~1,100-1,400 steps / ~4,500-5,700 sequences, against an initial loss of
    ~2,800 nats/frame (4096 ln 2). RESULTS.md: 65 minutes on one core (751 steps) reached 130.4 nats/frame on the
    test set (baseline 313.3; lower bound 87.0 on the same 1,000 sequences).
    """
    return moving_mnist_paper().replace(top_channels=64, **_CPU_SCALE)


@preset
def cpu_moving_mnist_baseline() -> VPNConfig:
    """The baseline at the `cpu_moving_mnist` widths."""
    return cpu_moving_mnist().replace(model="baseline")


@preset
def cpu_pushing_sim() -> VPNConfig:
    """Simulated pushing (pybullet) at CPU scale: RGB softmax VPN with actions and states."""
    return robot_pushing_paper().replace(
        dataset="pushing_sim", data_dir="data/pushing_sim", top_channels=96, **_CPU_SCALE
    )


@preset
def cpu_pushing_sim_no_actions() -> VPNConfig:
    """`cpu_pushing_sim` without actions and states: what conditioning on the robot's commands is worth."""
    return cpu_pushing_sim().replace(action_dim=0, state_dim=0)


@preset
def cpu_pushing_sim_baseline() -> VPNConfig:
    """The baseline (pixels of a frame independent given the past) at `cpu_pushing_sim` widths, conditioned on
    actions and states like the paper's Table 3 baseline."""
    return cpu_pushing_sim().replace(model="baseline")


# What the test presets share: 8 x 8 frames, two blocks each side, a few thousand parameters.
_TINY_SCALE = dict(
    image_size=8,
    encoder_blocks=2,
    decoder_blocks=2,
    encoder_dilations=(1, 2),
    lstm_channels=8,
    top_channels=12,
    first_kernel_size=3,
    num_frames=4,
    context_frames=2,
    batch_size=2,
    steps=3,
    eval_every=2,
    eval_sequences=4,
    checkpoint_every=1,
)


@preset
def tiny() -> VPNConfig:
    """A few thousand parameters on 8x8 grey frames, for tests."""
    return moving_mnist_paper().replace(hidden=4, eval_num_frames=4, **_TINY_SCALE)


@preset
def tiny_rgb() -> VPNConfig:
    """8x8 RGB softmax frames with actions and states, for tests. hidden=5 is deliberately not a multiple of 3."""
    return robot_pushing_paper().replace(hidden=5, eval_num_frames=5, **_TINY_SCALE)
