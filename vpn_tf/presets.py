"""The presets: the paper's configurations (§5.1, §6.1, Tables 1-3), CPU-scale ones, and test ones.

Every preset is a function returning a `VPNConfig`; variants override a base instead of copying it, and the paper's
Table 2 / Table 3 variants are built from one table (`PAPER_VARIANTS`) for both benchmarks.
`get_config("cpu_moving_mnist", hidden=48)` (or `python train.py --hidden 48`) overrides any field by name.

Reference: Kalchbrenner et al., "Video Pixel Networks", ICML 2017, §5.1 and §6.1.
"""

from __future__ import annotations

from collections.abc import Callable

from vpn_tf.config import VPNConfig

_PRESETS: dict[str, Callable[[], VPNConfig]] = {}
_KINDS: dict[str, str] = {}
KINDS = ("paper", "cpu", "test")


def preset(kind: str):
    """Registers a preset function under its name, as a "paper", "cpu" or "test" preset."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}. Received: {kind!r}")

    def register(fn: Callable[[], VPNConfig]) -> Callable[[], VPNConfig]:
        _PRESETS[fn.__name__] = fn
        _KINDS[fn.__name__] = kind
        return fn

    return register


def preset_names(kind: str | None = None) -> tuple[str, ...]:
    """Every preset's name (or those of one kind: "paper", "cpu", "test"), in registration order."""
    return tuple(n for n in _PRESETS if kind is None or _KINDS[n] == kind)


def preset_kind(name: str) -> str:
    return _KINDS[name]


def preset_doc(name: str) -> str:
    """The first line of the preset's docstring."""
    return (_PRESETS[name].__doc__ or "").strip().split("\n")[0]


def get_config(name: str, **overrides) -> VPNConfig:
    """The preset `name` with `overrides` applied.

    Raises:
        ValueError: an unknown preset (the message lists the choices) or an unknown/invalid field.
    """
    if name not in _PRESETS:
        raise ValueError(f"Unknown preset {name!r}. Choices: {', '.join(_PRESETS)}")
    cfg = _PRESETS[name]()
    return cfg.replace(name=name, **overrides) if overrides else cfg.replace(name=name)


@preset("paper")
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


@preset("paper")
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


# Tables 2 and 3: the variants of both benchmarks' VPN, and Table 1 / 3's baseline.
PAPER_VARIANTS = {
    "rmb_no_dilation": ("VPN (RMB, No Dilation)", {"encoder_dilations": (1,)}),
    "relu_dilation": (
        "VPN (Relu, Dilation): ReLU blocks, doubled block counts (16 / 24)",
        {"block": "relu", "encoder_blocks": 16, "decoder_blocks": 24},
    ),
    "relu_no_dilation": (
        "VPN (Relu, No Dilation)",
        {"block": "relu", "encoder_blocks": 16, "decoder_blocks": 24, "encoder_dilations": (1,)},
    ),
    "baseline": (
        "the baseline model: same encoders and core, unmasked decoders that do not see frame t",
        {"model": "baseline"},
    ),
}


def _register_variants(base: Callable[[], VPNConfig], table: str):
    for suffix, (doc, overrides) in PAPER_VARIANTS.items():

        def variant(base=base, overrides=overrides) -> VPNConfig:
            return base().replace(**overrides)

        variant.__name__ = f"{base.__name__}_{suffix}"
        variant.__doc__ = f"{table}: {doc}."
        preset("paper")(variant)


_register_variants(moving_mnist_paper, "Tables 1 and 2")
_register_variants(robot_pushing_paper, "Table 3")


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


@preset("cpu")
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


@preset("cpu")
def cpu_moving_mnist_baseline() -> VPNConfig:
    """The baseline at the `cpu_moving_mnist` widths."""
    return cpu_moving_mnist().replace(model="baseline")


@preset("cpu")
def cpu_pushing_sim() -> VPNConfig:
    """Simulated pushing (pybullet) at CPU scale: RGB softmax VPN with actions and states."""
    return robot_pushing_paper().replace(
        dataset="pushing_sim", data_dir="data/pushing_sim", top_channels=96, **_CPU_SCALE
    )


@preset("cpu")
def cpu_pushing_sim_no_actions() -> VPNConfig:
    """`cpu_pushing_sim` without actions and states: what conditioning on the robot's commands is worth."""
    return cpu_pushing_sim().replace(action_dim=0, state_dim=0)


@preset("cpu")
def cpu_pushing_sim_baseline() -> VPNConfig:
    """The baseline (pixels of a frame independent given the past) at `cpu_pushing_sim` widths, conditioned on
    actions and states like the paper's Table 3 baseline."""
    return cpu_pushing_sim().replace(model="baseline")


@preset("paper")
def bair_robot_pushing_small_paper() -> VPNConfig:
    """The §6.1 VPN on TFDS's `bair_robot_pushing_small` (Ebert et al. 2017; 64 x 64 `image_main` frames, 4-d
    actions, 3-d end-effector positions as states; its train split's last 5% for validation). Not the paper's data
    (Finn et al.'s Robotic Pushing), so its figures are not the paper's; same widths and frame protocol."""
    return robot_pushing_paper().replace(
        dataset="tfds",
        tfds_name="bair_robot_pushing_small",
        tfds_features="video=image_main,actions=action,states=endeffector_pos",
        tfds_splits="train=train[:95%],validation=train[95%:],test=test",
        action_dim=4,
        state_dim=3,
    )


@preset("cpu")
def cpu_bair_robot_pushing_small() -> VPNConfig:
    """`bair_robot_pushing_small_paper` at the CPU presets' widths."""
    return bair_robot_pushing_small_paper().replace(top_channels=96, **_CPU_SCALE)


@preset("cpu")
def videos() -> VPNConfig:
    """Your own videos, converted by `python -m datasets.videos` (`--data_dir DIR`): the CPU presets' widths, a
    256-way softmax per colour, 2 context frames and 10 predicted, as for pushing. Frame height, width and
    channels and action and state sizes come from the directory's metadata unless given (`--height` ...)."""
    # channels=1 until the data says otherwise, so that grey data may ask for the sigmoid output (`--output sigmoid`)
    # before the metadata is read.
    return cpu_pushing_sim().replace(
        dataset="videos",
        data_dir="",
        channels=1,
        action_dim=0,
        state_dim=0,
        num_frames=12,
        eval_num_frames=12,
    )


@preset("cpu")
def moving_mnist_tfds() -> VPNConfig:
    """Moving MNIST from TFDS's `moving_mnist` (its one split, test: the standard `mnist_test_seq.npy` sequences),
    for evaluating the Moving MNIST models (`evaluate.py --data_config moving_mnist_tfds`); no training split."""
    return cpu_moving_mnist().replace(
        dataset="tfds", tfds_name="moving_mnist", tfds_features="video=image_sequence", tfds_splits="test=test"
    )


# What the test presets share: 8 x 8 frames, two blocks each side, a few thousand parameters.
_TINY_SCALE = dict(
    height=8,
    width=8,
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


@preset("test")
def tiny() -> VPNConfig:
    """A few thousand parameters on 8x8 grey frames, for tests."""
    return moving_mnist_paper().replace(hidden=4, eval_num_frames=4, **_TINY_SCALE)


@preset("test")
def tiny_rgb() -> VPNConfig:
    """8x8 RGB softmax frames with actions and states, for tests. hidden=5 is deliberately not a multiple of 3."""
    return robot_pushing_paper().replace(hidden=5, eval_num_frames=5, **_TINY_SCALE)
