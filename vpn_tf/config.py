"""The typed configuration of a Video Pixel Network: one frozen dataclass, every field documented, grouped.

Fields carry their group in the dataclass metadata ("data": what is read; "architecture": what the weights are;
"training": how they are fitted; `fields_in`), so the lists other code needs (the fields a checkpoint is tied to,
`ARCHITECTURE_FIELDS`; the data fields two models must share to be compared) derive from it. Presets live in
`vpn_tf.presets`; every field can be overridden by name (`get_config("cpu_moving_mnist", hidden=48)` or
`python train.py --hidden 48`).

Reference: Kalchbrenner et al., "Video Pixel Networks", ICML 2017, §5.1 and §6.1.
"""

from __future__ import annotations

import dataclasses
import functools
import json

MODEL_KINDS = ("vpn", "baseline")
BLOCK_KINDS = ("rmb", "relu")
OUTPUT_KINDS = ("sigmoid", "softmax")
CONTEXT_WIRINGS = ("every_block", "every_layer")
DATASETS = ("moving_mnist", "robot_pushing", "pushing_sim", "videos", "tfds")

NUM_INTENSITIES = 256  # 8-bit pixels: a softmax over 256 raw values, never 255.


GROUPS = ("data", "architecture", "training")


def _field(default, group: str, checkpoint: bool = False, choices: tuple[str, ...] | None = None):
    """A config field with its group in the dataclass metadata: "data" (what is read), "architecture" (what the
    weights are), "training" (how they are fitted). `checkpoint`: a data field a checkpoint is tied to as well.
    `choices`: the values an enumerated field may take (the command line offers them)."""
    return dataclasses.field(default=default, metadata={"group": group, "checkpoint": checkpoint, "choices": choices})


@dataclasses.dataclass(frozen=True)
class VPNConfig:
    """Everything needed to build and train one VPN (or its baseline)."""

    name: str = "custom"
    """Preset name the config was derived from (informational)."""

    # --- Data layout -------------------------------------------------------------------------------------------
    dataset: str = _field("moving_mnist", "data", choices=DATASETS)
    """Which data pipeline trains this config: one of `DATASETS` ("videos": a directory written by
    `python -m datasets.videos`; "tfds": a prepared TFDS dataset, see `tfds_name`)."""
    height: int = _field(64, "data", checkpoint=True)
    """Frame height in pixels. (Configs written before frames could be oblong have one `image_size` field instead
    of `height` and `width`: it means a square frame, and `replace(image_size=n)` and `--image_size n` set both.)"""
    width: int = _field(64, "data", checkpoint=True)
    """Frame width in pixels."""
    channels: int = _field(1, "data", checkpoint=True)
    """Colour channels per pixel: 1 (grey, Moving MNIST) or 3 (RGB, ordered R, G, B)."""
    num_frames: int = _field(20, "data")
    """Frames per training sequence (context + predicted)."""
    context_frames: int = _field(10, "data")
    """Leading frames that are given; the model's likelihood covers only the frames after them."""
    eval_num_frames: int = _field(20, "data")
    """Frames per evaluation sequence (the pushing benchmark trains on 12 and evaluates on 20)."""
    data_dir: str = _field("", "data")
    """Where the data lies: the pushing data (push_train/, push_val/, push_testseen/, push_testnovel/); for
    "videos", a directory written by `python -m datasets.videos`; for "tfds", the TFDS data directory (empty: TFDS's
    default). Unused for Moving MNIST, which is generated from the shipped MNIST files."""
    tfds_name: str = _field("", "data")
    """"tfds" only: the TFDS dataset to read, e.g. "bair_robot_pushing_small" (prepared beforehand; nothing is
    downloaded when training)."""
    tfds_features: str = _field("video=image_sequence", "data")
    """"tfds" only: which features of the TFDS examples are the video and, optionally, the per-frame actions and
    states, as "video=KEY[,actions=KEY][,states=KEY]"."""
    tfds_splits: str = _field("train=train,validation=validation,test=test", "data")
    """"tfds" only: which TFDS split (TFDS slicing syntax allowed) each of our splits reads, as
    "train=SPLIT,validation=SPLIT,test=SPLIT"; a split left out cannot be read."""

    # --- Architecture ------------------------------------------------------------------------------------------
    model: str = _field("vpn", "architecture", choices=MODEL_KINDS)
    """"vpn" (PixelCNN decoders, §3.2) or "baseline" (unmasked CNN decoders that do not see frame t, §3.3)."""
    block: str = _field("rmb", "architecture", choices=BLOCK_KINDS)
    """Residual block kind: "rmb" (Eq. 4) or "relu" (bottleneck residual block of He et al. 2016)."""
    hidden: int = _field(128, "architecture")
    """c: channels inside the blocks; block inputs and outputs have 2c channels (§4.2)."""
    encoder_blocks: int = _field(8, "architecture")
    """k: residual blocks in the encoder (16 for the ReLU variant in the paper)."""
    decoder_blocks: int = _field(12, "architecture")
    """l: residual blocks in the decoder (24 for the ReLU variant in the paper)."""
    encoder_dilations: tuple[int, ...] = _field((1, 2, 4, 8), "architecture")
    """Dilation scheme repeated over the encoder blocks (§4.3); (1,) means no dilation."""
    lstm_channels: int = _field(256, "architecture")
    """Channels of the convolutional LSTM."""
    lstm_kernel_size: int = _field(3, "architecture")
    """Kernel of the convolutional LSTM (not stated in the paper; 3x3 like every other spatial kernel)."""
    top_channels: int = _field(768, "architecture")
    """Channels of the topmost decoder layer before the output (768 Moving MNIST, 1536 pushing)."""
    first_kernel_size: int = _field(7, "architecture")
    """Kernel of the decoder's type-A masked input layer. Not stated in the paper; 7x7 as in PixelCNN."""
    context_wiring: str = _field("every_block", "architecture", choices=CONTEXT_WIRINGS)
    """How the ConvLSTM context enters the PixelCNN decoder (the paper does not say). "every_block": an unmasked
    `context_kernel_size` convolution of the context is added to the input of every decoder block and of the output
    head, as conditional PixelCNN (van den Oord et al. 2016) conditions every layer; the context depends on past
    frames only, so none of it needs hiding, and a kernel wider than 1 lets pixel (i, j) read the context right of
    and below it, which masked layers never pass up. "every_layer": "every_block" plus a 1x1 projection of the
    same context features added to the head's topmost layer, so each colour's logits read the context at the
    topmost layer's full per-colour width (masked layers give each colour a third of the channels; see
    `PixelCNNDecoder`). RESULTS.md measured both against a projection at the decoder's input only (no longer
    offered: it lost at equal budgets)."""
    context_kernel_size: int = _field(3, "architecture")
    """Kernel of the "every_block" context projections (odd; 1 means the context at the pixel only)."""
    decoder_past_frames: int = _field(0, "architecture")
    """Not in the paper (0, the default, is the paper's model). The decoder also reads the pixels of the last
    `decoder_past_frames` frames before the one it predicts, unmasked, concatenated to the ConvLSTM output it reads
    as its context (so they enter through the context projections, `context_kernel_size` wide). Why: at small
    widths the ConvLSTM state keeps where a digit is better than its shape (RESULTS.md); the last frames hold the
    shape at full resolution, and two of them hold the local motion. They depend on past frames only, so causality
    is untouched. Frames before the video's first are read as black."""
    output: str = _field("sigmoid", "architecture", choices=OUTPUT_KINDS)
    """"sigmoid": one logit per pixel against grey-level targets (Moving MNIST only, Eq. 5);
    "softmax": 256 logits per colour channel."""
    binarize_inputs: bool = _field(False, "training")
    """Sigmoid (Moving MNIST) models only; training only. The network reads each training sequence as binary frames
    drawn pixel by pixel from its grey levels (Bernoulli(x / 255), a fresh draw per sequence of the stream, by the
    input pipeline: "dynamic binarisation"), while the loss stays Eq. 5 against the grey levels: with the
    conditionals computed from such a draw, that is an unbiased estimate of the expected negative log-likelihood of
    binary frames drawn from the grey levels (same lower bound, by Gibbs' inequality). Why: the sampler draws binary
    pixels and feeds them back within a frame (the pixels above and left) and as context frames; a network trained
    on grey inputs never saw such inputs. Not in the paper (it does not say what the network reads). Validation
    during training reads binary frames too (`validates_on_binary_frames`); `evaluate.py` feeds the grey frames
    (the paper's metric) unless told to read binary ones. RESULTS.md reports what it changes."""
    action_dim: int = _field(0, "architecture")
    """Size of the per-frame action vector (5 in the pushing benchmark); 0 disables action conditioning."""
    state_dim: int = _field(0, "architecture")
    """Size of the per-frame state vector (5 in the pushing benchmark); 0 disables state conditioning."""

    # --- Training ----------------------------------------------------------------------------------------------
    batch_size: int = _field(64, "training")
    """Global batch size in sequences (split across replicas)."""
    learning_rate: float = _field(3e-4, "training")
    """Initial RMSProp learning rate (3e-4 Moving MNIST, 1e-4 pushing)."""
    lr_decay_factor: float = _field(0.3, "training")
    """The learning rate is multiplied by this when validation likelihood flatlines."""
    plateau_patience: int = _field(3, "training")
    """Evaluations without improvement before the learning rate decays."""
    steps: int = _field(300_000, "training")
    """Total training steps."""
    eval_every: int = _field(1000, "training")
    """Steps between evaluations on the held-out split."""
    eval_sequences: int = _field(256, "training")
    """Held-out sequences per periodic evaluation."""
    checkpoint_every: int = _field(1000, "training")
    """Steps between checkpoints."""
    grad_clip_norm: float = _field(0.0, "training")
    """Global gradient-norm clip; 0 disables it (the paper does not mention clipping)."""
    remat: bool = _field(False, "training")
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
        overrides = _square_frames(dict(overrides))
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"Unknown config field(s) {unknown}. Valid fields: {sorted(field_names())}")
        if "encoder_dilations" in overrides:
            overrides["encoder_dilations"] = tuple(int(d) for d in overrides["encoder_dilations"])
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["encoder_dilations"] = list(self.encoder_dilations)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of every frame."""
        return (self.height, self.width, self.channels)

    @classmethod
    def from_dict(cls, d: dict) -> VPNConfig:
        d = _square_frames(dict(d))
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


def _square_frames(d: dict) -> dict:
    """`image_size` (the one frame-size field of earlier versions, square frames) as `height` and `width`."""
    if "image_size" in d:
        size = d.pop("image_size")
        for name in ("height", "width"):
            if d.setdefault(name, size) != size:
                raise ValueError(f"image_size={size} (a square frame) contradicts {name}={d[name]}")
    return d


# Training-only fields of earlier versions, with the value that meant "off": a run directory that has them at that
# value still loads.
REMOVED_FIELDS = {"binarize_fraction": 1.0, "train_context_frames": 0}


def fields_in(group: str) -> tuple[str, ...]:
    """The names of the config fields of `group` ("data", "architecture" or "training"), in declaration order."""
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}. Received: {group!r}")
    return tuple(f.name for f in dataclasses.fields(VPNConfig) if f.metadata.get("group") == group)


def evaluation_data_fields(config: VPNConfig) -> tuple[str, ...]:
    """The data fields two models must share to be evaluated or sampled on the same sequences the same way: every
    "data" field but the training subsequence length (`num_frames`), and `data_dir` only where it is read."""
    skip = {"num_frames"} | ({"data_dir"} if config.dataset == "moving_mnist" else set())
    return tuple(n for n in fields_in("data") if n not in skip)


def incomparable(config: VPNConfig, other: VPNConfig) -> list[str]:
    """Why two models cannot be scored on the same sequences the same way ("FIELD a vs b" for each data field and
    the output they differ in); empty when they can."""
    fields = [*evaluation_data_fields(config), "output"]
    return [
        f"{f} {getattr(config, f)!r} vs {getattr(other, f)!r}"
        for f in fields
        if getattr(config, f) != getattr(other, f)
    ]


# Fields that determine the network's weights; a checkpoint is only compatible across configs equal on these.
ARCHITECTURE_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(VPNConfig)
    if f.metadata.get("group") == "architecture" or f.metadata.get("checkpoint")
)


def field_doc(name: str) -> str:
    """The docstring written under field `name` in `VPNConfig` (the attribute docstrings are not kept at run time,
    so they are read from this module's source)."""
    return _field_docs()[name]


@functools.cache
def _field_docs() -> dict[str, str]:
    import ast
    import inspect

    body = ast.parse(inspect.getsource(VPNConfig)).body[0].body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[node.target.id] = " ".join(str(after.value.value).split())
    return docs


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(VPNConfig))


def parse_mapping(text: str, field: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """ "a=X,b=Y" -> {"a": "X", "b": "Y"}; a ValueError naming `field` for a bad entry or a name not in `allowed`.

    Values may hold commas only inside brackets (TFDS slices such as "train[:95%]" have none)."""
    out = {}
    for entry in (e.strip() for e in text.split(",") if e.strip()):
        name, sep, value = entry.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not value or name not in allowed or name in out:
            raise ValueError(
                f"{field} must be NAME=VALUE entries with NAME one of {allowed}, each once. Received: {text!r}"
            )
        out[name] = value
    return out


def _check(condition: bool, message: str):
    if not condition:
        raise ValueError(message)


def validate(c: VPNConfig) -> None:
    """Raises a ValueError naming the offending field and value."""
    _check(c.model in MODEL_KINDS, f"model must be one of {MODEL_KINDS}. Received: model={c.model!r}")
    _check(c.block in BLOCK_KINDS, f"block must be one of {BLOCK_KINDS}. Received: block={c.block!r}")
    _check(c.output in OUTPUT_KINDS, f"output must be one of {OUTPUT_KINDS}. Received: output={c.output!r}")
    _check(c.dataset in DATASETS, f"dataset must be one of {DATASETS}. Received: dataset={c.dataset!r}")
    if c.dataset == "tfds":
        _check(bool(c.tfds_name), "dataset='tfds' needs tfds_name (e.g. bair_robot_pushing_small)")
        features = parse_mapping(c.tfds_features, "tfds_features", ("video", "actions", "states"))
        _check(
            "video" in features, f"tfds_features must name the video feature (video=KEY). Received: {c.tfds_features!r}"
        )
        for name, dim in (("actions", c.action_dim), ("states", c.state_dim)):
            _check(
                (name in features) == (dim > 0),
                f"tfds_features maps {name} if and only if the model reads them ({name[:-1]}_dim={dim}). "
                f"Received: tfds_features={c.tfds_features!r}",
            )
        parse_mapping(c.tfds_splits, "tfds_splits", ("train", "validation", "test"))
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
    for name in ("height", "width", "hidden", "encoder_blocks", "lstm_channels", "top_channels", "batch_size", "steps"):
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
