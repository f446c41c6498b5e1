import dataclasses

import pytest

import vpn_tf
from vpn_tf.config import VPNConfig


def test_paper_presets_match_the_paper():
    mm = vpn_tf.get_config("moving_mnist_paper")
    assert (mm.hidden, mm.encoder_blocks, mm.decoder_blocks, mm.lstm_channels, mm.top_channels) == (
        128,
        8,
        12,
        256,
        768,
    )
    assert mm.dilations == (1, 2, 4, 8, 1, 2, 4, 8)
    assert (mm.batch_size, mm.learning_rate, mm.num_frames, mm.context_frames) == (64, 3e-4, 20, 10)
    assert mm.output == "sigmoid" and mm.num_classes == 1
    rp = vpn_tf.get_config("robot_pushing_paper")
    assert (rp.top_channels, rp.action_dim, rp.state_dim, rp.learning_rate) == (1536, 5, 5, 1e-4)
    assert (rp.num_frames, rp.context_frames, rp.eval_num_frames, rp.num_classes) == (12, 2, 20, 256)
    relu = vpn_tf.get_config("moving_mnist_paper_relu_dilation")
    assert (relu.block, relu.encoder_blocks, relu.decoder_blocks) == ("relu", 16, 24)
    assert relu.dilations == (1, 2, 4, 8) * 4
    assert vpn_tf.get_config("robot_pushing_paper_rmb_no_dilation").dilations == (1,) * 8
    assert vpn_tf.get_config("moving_mnist_paper_baseline").model == "baseline"


def test_overrides_and_round_trip():
    cfg = vpn_tf.get_config("tiny", hidden=6, encoder_dilations=[1, 3])
    assert cfg.hidden == 6 and cfg.encoder_dilations == (1, 3) and cfg.name == "tiny"
    again = VPNConfig.from_dict(__import__("json").loads(cfg.to_json()))
    assert again == cfg
    assert cfg.diff(vpn_tf.get_config("tiny")) == {"hidden": (6, 4), "encoder_dilations": ((1, 3), (1, 2))}


def test_unknown_preset_lists_choices():
    with pytest.raises(ValueError, match="cpu_moving_mnist") as e:
        vpn_tf.get_config("moving_mnist")
    assert "Unknown preset 'moving_mnist'" in str(e.value)


def test_unknown_field_lists_fields():
    with pytest.raises(ValueError, match="hidden_size.*Valid fields"):
        vpn_tf.get_config("tiny", hidden_size=3)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(channels=2), "channels=2"),
        (dict(output="softmax", channels=4), "channels=4"),
        (dict(channels=3), "sigmoid.*channels=3"),
        (dict(block="lstm"), "block='lstm'"),
        (dict(model="gan"), "model='gan'"),
        (dict(first_kernel_size=4), "first_kernel_size=4"),
        (dict(num_frames=2), "num_frames=2"),
        (dict(context_frames=0), "context_frames=0"),
        (dict(encoder_dilations=()), "encoder_dilations"),
        (dict(hidden=0), "hidden=0"),
    ],
)
def test_invalid_configs_name_the_problem(overrides, message):
    with pytest.raises(ValueError, match=message):
        vpn_tf.get_config("tiny", **overrides)


def test_every_field_has_a_docstring_in_the_source():
    import inspect

    source = inspect.getsource(VPNConfig)
    for f in dataclasses.fields(VPNConfig):
        line = next(ln for ln in source.splitlines() if ln.strip().startswith(f"{f.name}:"))
        following = source.splitlines()[source.splitlines().index(line) + 1].strip()
        assert following.startswith('"""'), f"field {f.name} has no attribute docstring"


@pytest.mark.parametrize(
    "argv, remat, hidden",
    [([], False, 4), (["--remat"], True, 4), (["--remat", "false"], False, 4), (["--remat", "--hidden", "8"], True, 8)],
)
def test_boolean_fields_work_as_bare_flags(argv, remat, hidden):
    import argparse

    from vpn_tf import cli

    parser = argparse.ArgumentParser()
    cli.add_config_flags(parser)
    config = cli.config_from_args(parser.parse_args(argv), "tiny")
    assert config.remat is remat and config.hidden == hidden


def test_binarize_inputs_is_for_the_sigmoid_output_only():
    assert vpn_tf.get_config("tiny", binarize_inputs=True).binarize_inputs
    with pytest.raises(ValueError, match="binarize_inputs.*output='softmax'"):
        vpn_tf.get_config("tiny_rgb", binarize_inputs=True)


def test_removed_options_load_when_off_and_are_refused_when_on():
    d = vpn_tf.get_config("tiny").to_dict()
    assert VPNConfig.from_dict({**d, "binarize_fraction": 1.0, "train_context_frames": 0}) == VPNConfig.from_dict(d)
    for name, value in (("binarize_fraction", 0.5), ("train_context_frames", 1)):
        with pytest.raises(ValueError, match=f"sets {name}, an option this version no longer has"):
            VPNConfig.from_dict({**d, name: value})
    old = {k: v for k, v in d.items() if k != "context_wiring"}
    with pytest.raises(ValueError, match="no context_wiring field"):
        VPNConfig.from_dict(old)
    with pytest.raises(ValueError, match="context_wiring must be one of"):
        vpn_tf.get_config("tiny", context_wiring="input")


def test_image_size_of_earlier_configs_means_a_square_frame():
    d = vpn_tf.get_config("tiny", height=5, width=9).to_dict()
    assert (d["height"], d["width"]) == (5, 9) and "image_size" not in d
    old = {k: v for k, v in d.items() if k not in ("height", "width")} | {"image_size": 12}
    assert VPNConfig.from_dict(old).frame_shape == (12, 12, 1)
    assert vpn_tf.get_config("tiny", image_size=6).frame_shape == (6, 6, 1)
    with pytest.raises(ValueError, match="image_size=6 \\(a square frame\\) contradicts height=5"):
        vpn_tf.get_config("tiny", image_size=6, height=5)
    for name in ("height", "width"):
        with pytest.raises(ValueError, match=f"{name} must be >= 1"):
            vpn_tf.get_config("tiny", **{name: 0})


def test_cli_image_size_and_data_flags(capsys):
    import argparse

    from vpn_tf import cli

    parser = argparse.ArgumentParser()
    cli.add_config_flags(parser)
    args = parser.parse_args(["--image_size", "16", "--width", "20"])
    with pytest.raises(SystemExit, match="contradicts width=20"):
        cli.config_from_args(args, "tiny")
    args = parser.parse_args(["--image_size", "16"])
    assert cli.config_from_args(args, "tiny").frame_shape == (16, 16, 1)
    assert cli.given_fields(args) == {"height", "width"}

    # A trained model pointed at other data: a preset's data fields, then single fields.
    data = argparse.ArgumentParser()
    cli.add_data_flags(data)
    model = vpn_tf.get_config("cpu_moving_mnist")
    tfds = cli.with_data_flags(model, data.parse_args(["--data_config", "moving_mnist_tfds"]))
    assert (tfds.dataset, tfds.tfds_name, tfds.context_frames, tfds.eval_num_frames) == ("tfds", "moving_mnist", 10, 20)
    assert tfds.diff(model, vpn_tf.config.ARCHITECTURE_FIELDS) == {}
    own = cli.with_data_flags(model, data.parse_args(["--dataset", "videos", "--data_dir", "d"]))
    assert (own.dataset, own.data_dir, own.hidden) == ("videos", "d", model.hidden)
    with pytest.raises(SystemExit, match="unknown --data_config 'moving_mnist_tfd'. Did you mean 'moving_mnist_tfds'"):
        cli.with_data_flags(model, data.parse_args(["--data_config", "moving_mnist_tfd"]))
    with pytest.raises(SystemExit):  # an enumerated data field offers its choices
        data.parse_args(["--dataset", "youtube"])
    assert "argument --dataset: invalid choice: 'youtube' (choose from 'moving_mnist'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a checkpoint's frame shape is not a data flag
        data.parse_args(["--height", "32"])
