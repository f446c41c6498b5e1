"""Command-line plumbing shared by train.py, evaluate.py, sample.py and export.py: presets and field overrides."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re

from vpn_tf.config import VPNConfig, field_doc
from vpn_tf.presets import get_config, preset_names

_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


def boolean(text: str) -> bool:
    """A command-line bool: true/false, yes/no or 1/0 (any case); anything else is an error naming the choices."""
    word = str(text).lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected one of true/false, yes/no, 1/0; got {text!r}")


def _parse_value(field: dataclasses.Field, text: str):
    default = field.default
    if isinstance(default, bool):
        try:
            return boolean(text)
        except argparse.ArgumentTypeError as e:
            raise ValueError(str(e)) from None
    if isinstance(default, tuple):
        return tuple(int(x) for x in text.split(",") if x)
    return type(default)(text)


def _expected(field: dataclasses.Field) -> str:
    """What a --FIELD flag accepts, for its error message."""
    if field.metadata.get("choices"):
        return "one of " + ", ".join(field.metadata["choices"])
    if isinstance(field.default, bool):
        return "true/false, yes/no or 1/0"
    if isinstance(field.default, tuple):
        return "comma-separated ints"
    return type(field.default).__name__


def _field_help(field: dataclasses.Field) -> str:
    """The first sentence of the field's docstring (`vpn_tf.config.field_doc`) and its default's kind."""
    doc = field_doc(field.name)
    # A sentence ends at ". " before a capital or a quote ("Eq. 5" and "e.g. x" do not end one).
    first = re.split(r"(?<=\.)\s+(?=[A-Z\"`(])", doc, maxsplit=1)[0]
    # argparse formats help with %-style substitution: a literal percent sign must be doubled.
    return first.replace("%", "%%")


def presets_help() -> str:
    """The presets by kind, the test presets marked as such."""
    kinds = {"paper": "paper", "cpu": "CPU-scale", "test": "test suite only (tiny, untrained-quality)"}
    return "; ".join(f"{label}: {', '.join(preset_names(kind))}" for kind, label in kinds.items() if preset_names(kind))


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """--config NAME plus one --FIELD flag per `VPNConfig` field (all default to the preset's value), each with the
    first sentence of the field's docstring as help and, for enumerated fields, its choices."""
    parser.add_argument("--config", default=None, metavar="PRESET", help=f"preset name. {presets_help()}")
    group = parser.add_argument_group("config overrides (default: the preset's value; vpn_tf/config.py documents each)")
    for f in dataclasses.fields(VPNConfig):
        if f.name == "name":
            continue
        if isinstance(f.default, bool):  # `--remat` alone means true; `--remat false` also works
            group.add_argument(
                f"--{f.name}", default=None, nargs="?", const="true", metavar="BOOL", help=_field_help(f)
            )
        elif f.metadata.get("choices"):
            group.add_argument(f"--{f.name}", default=None, choices=f.metadata["choices"], help=_field_help(f))
        else:
            kind = "ints" if isinstance(f.default, tuple) else type(f.default).__name__
            group.add_argument(f"--{f.name}", default=None, metavar=kind.upper(), help=_field_help(f))
    group.add_argument("--image_size", default=None, metavar="INT", help="square frames: sets height and width")


def seed(text: str) -> int:
    """A command-line seed: a non-negative integer (numpy's generators, which draw the binarised frames and the
    data, refuse negative seeds; refused here, the error names the flag before anything runs)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {value}")
    return value


def add_seed_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """--seed INT, the one seed of everything random in a command (`what` says what it seeds)."""
    parser.add_argument("--seed", type=seed, default=0, metavar="INT", help=f"seed of {what} (default 0)")


def add_xla_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """--xla (every command's XLA switch; train.py's earlier name `--jit` still works, unlisted)."""
    parser.add_argument("--xla", action="store_true", help=what)
    parser.add_argument("--jit", dest="xla", action="store_true", help=argparse.SUPPRESS)


def add_checkpoint_flags(parser: argparse.ArgumentParser, default_workdir: str | None = None) -> None:
    """--workdir DIR (a train.py working directory) and --checkpoint PATH (default: its latest)."""
    default = f" (default: the shipped model {default_workdir})" if default_workdir else ""
    parser.add_argument("--workdir", default=None, help=f"a train.py working directory{default}")
    parser.add_argument(
        "--checkpoint",
        default=None,
        metavar="PATH",
        help="a checkpoint inside --workdir, e.g. DIR/checkpoints/ckpt-800 (default: the latest)",
    )


def add_split_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """--split NAME; default None, which `vpn_tf.commands.resolve_split` turns into the dataset's test split."""
    parser.add_argument(
        "--split",
        default=None,
        metavar="NAME",
        help=f"{what}: validation or a test split (default: the dataset's test split: test; test_seen for pushing)",
    )


def config_from_args(args: argparse.Namespace, default_preset: str) -> VPNConfig:
    """The preset named by --config (default `default_preset`) with every given --FIELD applied."""
    name = args.config or default_preset
    if name not in preset_names():
        close = difflib.get_close_matches(name, preset_names(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SystemExit(f"error: unknown preset {name!r}.{hint} Choices: {', '.join(preset_names())}")
    overrides = {}
    for f in dataclasses.fields(VPNConfig):
        value = getattr(args, f.name, None)
        if f.name != "name" and value is not None:
            try:
                overrides[f.name] = _parse_value(f, value)
            except ValueError:
                raise SystemExit(f"error: --{f.name} expects {_expected(f)}, got {value!r}") from None
    if getattr(args, "image_size", None) is not None:
        try:
            overrides["image_size"] = int(args.image_size)
        except ValueError:
            raise SystemExit(f"error: --image_size expects int, got {args.image_size!r}") from None
    try:
        return get_config(name, **overrides)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    """Flags that point a trained model at other data of the same frames: --data_config PRESET (its data fields)
    and one --FIELD per data field a checkpoint is not tied to (--dataset, --data_dir, --context_frames, ...)."""
    group = parser.add_argument_group("data (default: what the model was trained on)")
    group.add_argument(
        "--data_config",
        default=None,
        metavar="PRESET",
        help="read the data of this preset (its data fields), e.g. videos with --data_dir, or moving_mnist_tfds",
    )
    for f in _data_fields():
        if f.metadata.get("choices"):
            group.add_argument(f"--{f.name}", default=None, choices=f.metadata["choices"], help=_field_help(f))
        else:
            group.add_argument(
                f"--{f.name}", default=None, metavar=type(f.default).__name__.upper(), help=_field_help(f)
            )


def _data_fields():
    # Not the checkpoint's frame shape, nor the training length (sample.py's --num_frames is the frames to generate).
    return [
        f
        for f in dataclasses.fields(VPNConfig)
        if f.metadata.get("group") == "data" and not f.metadata["checkpoint"] and f.name != "num_frames"
    ]


def with_data_flags(config: VPNConfig, args: argparse.Namespace) -> VPNConfig:
    """`config` (a trained model's) reading the data that --data_config and the data --FIELD flags name."""
    overrides = {}
    if getattr(args, "data_config", None):
        if args.data_config not in preset_names():
            close = difflib.get_close_matches(args.data_config, preset_names(), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise SystemExit(
                f"error: unknown --data_config {args.data_config!r}.{hint} Choices: {', '.join(preset_names())}"
            )
        data = get_config(args.data_config)
        overrides = {f.name: getattr(data, f.name) for f in _data_fields()}
        # A preset's training length may exceed the model's; only evaluation reads data here.
        overrides["num_frames"] = max(config.num_frames, overrides["context_frames"] + 1)
    for f in _data_fields():
        value = getattr(args, f.name, None)
        if value is not None:
            try:
                overrides[f.name] = _parse_value(f, value)
            except ValueError:
                raise SystemExit(f"error: --{f.name} expects {_expected(f)}, got {value!r}") from None
    try:
        return config.replace(**overrides) if overrides else config
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None


def given_fields(args: argparse.Namespace) -> set[str]:
    """The config fields set on the command line (`--image_size` sets height and width)."""
    given = {f.name for f in dataclasses.fields(VPNConfig) if getattr(args, f.name, None) is not None}
    return given | ({"height", "width"} if getattr(args, "image_size", None) is not None else set())


def parse_known(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """parse_args, but an unknown flag's error lists the valid flags (and the closest one)."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        valid = sorted(s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help")
        flag = unknown[0].split("=")[0]
        close = difflib.get_close_matches(flag, valid, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        parser.exit(2, f"error: unrecognized argument {unknown[0]!r}.{hint}\nValid flags: {' '.join(valid)}\n")
    return args
