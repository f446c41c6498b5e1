"""Command-line plumbing shared by train.py, evaluate.py, sample.py and export.py: presets and field overrides."""

from __future__ import annotations

import argparse
import dataclasses
import difflib

from vpn_tf.config import VPNConfig
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


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """--config NAME plus one --FIELD flag per `VPNConfig` field (all default to the preset's value)."""
    parser.add_argument("--config", default=None, help=f"preset name; one of: {', '.join(preset_names())}")
    group = parser.add_argument_group("config overrides (default: the preset's value)")
    for f in dataclasses.fields(VPNConfig):
        if f.name == "name":
            continue
        kind = "comma-separated ints" if isinstance(f.default, tuple) else type(f.default).__name__
        if isinstance(f.default, bool):  # `--remat` alone means true; `--remat false` also works
            group.add_argument(f"--{f.name}", default=None, nargs="?", const="true", metavar="BOOL", help="(bool)")
        else:
            group.add_argument(f"--{f.name}", default=None, metavar=kind.upper(), help=f"({kind})")
    group.add_argument("--image_size", default=None, metavar="INT", help="(int) square frames: sets height and width")


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
                expected = "true/false, yes/no or 1/0" if isinstance(f.default, bool) else type(f.default).__name__
                raise SystemExit(f"error: --{f.name} expects {expected}, got {value!r}") from None
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
        kind = type(f.default).__name__
        group.add_argument(f"--{f.name}", default=None, metavar=kind.upper(), help=f"({kind})")


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
                raise SystemExit(f"error: --{f.name} expects {type(f.default).__name__}, got {value!r}") from None
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
