"""The command-line vocabulary shared by train.py, evaluate.py, sample.py and export.py (vpn_tf/cli.py,
vpn_tf/commands/): every quick-start command answers --help, bad values fail naming the flag and what it accepts,
override help comes from the config fields' docstrings, and the shared flags mean the same everywhere."""

import argparse
import dataclasses

import pytest
from scripts import run_script

from vpn_tf import cli, commands
from vpn_tf.commands import evaluate, train
from vpn_tf.config import VPNConfig, field_doc, field_names
from vpn_tf.presets import get_config, preset_names

QUICK_START = ("train.py", "evaluate.py", "sample.py", "export.py", "plot_curves.py")


@pytest.mark.parametrize("script", QUICK_START)
def test_every_quick_start_command_answers_help(script):
    out = run_script(script, "--help", timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("usage:")


# Runs a script's --help in a fresh interpreter and reports whether TensorFlow got imported.
_IMPORTS_TF = """
import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
print("tensorflow" in sys.modules)
"""


@pytest.mark.parametrize("script", ["train.py", "evaluate.py", "sample.py", "export.py"])
def test_help_answers_without_importing_tensorflow(script):
    import subprocess
    import sys

    from scripts import ENV, ROOT

    cmd = [sys.executable, "-c", _IMPORTS_TF, script]
    out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout[-500:] + out.stderr[-2000:]
    # Negative control: the same probe sees TensorFlow once a model module is imported.
    probe = "import sys, vpn_tf; vpn_tf.build_model; print('tensorflow' in sys.modules)"
    seen = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert seen.stdout.strip() == "True"


def _parse_error(parse, argv, capsys):
    with pytest.raises(SystemExit) as e:
        parse(argv)
    assert e.value.code not in (0, None)
    return (str(e.value.code) if isinstance(e.value.code, str) else "") + capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, named, allowed",
    [
        (["--model", "transformer"], "--model", "'vpn', 'baseline'"),
        (["--output", "gaussian"], "--output", "'sigmoid', 'softmax'"),
        (["--dataset", "youtube"], "--dataset", "'videos'"),
        (["--context_wiring", "input"], "--context_wiring", "'every_block', 'every_layer'"),
        (["--remat", "maybe"], "--remat", "true/false, yes/no or 1/0"),
        (["--binarize_inputs", "on"], "--binarize_inputs", "true/false, yes/no or 1/0"),
        (["--hidden", "wide"], "--hidden", "int"),
        (["--learning_rate", "fast"], "--learning_rate", "float"),
        (["--encoder_dilations", "1,two"], "--encoder_dilations", "comma-separated ints"),
        (["--config", "cpu_moving_mnst"], "preset", "cpu_moving_mnist"),
        (["--xla_gating", "sometimes"], "--xla_gating", "true/false"),
        (["--max_minutes", "0"], "--max_minutes", "must be positive"),
        (["--max_minutes", "-5"], "--max_minutes", "must be positive"),
        (["--max_minutes", "nan"], "--max_minutes", "must be positive"),
    ],
)
def test_bad_train_flag_values_name_the_flag_and_what_it_accepts(argv, named, allowed, capsys):
    message = _parse_error(train.parse, argv, capsys)
    assert named in message and allowed in message, message


def test_bool_overrides_accept_only_the_six_words():
    for word, value in [("true", True), ("Yes", True), ("1", True), ("false", False), ("NO", False), ("0", False)]:
        assert cli.boolean(word) is value
    for word in ("", "y", "on", "2", "truthy"):
        with pytest.raises(argparse.ArgumentTypeError, match="true/false, yes/no, 1/0"):
            cli.boolean(word)


def test_override_help_is_each_fields_docstring_with_choices():
    parser = argparse.ArgumentParser()
    cli.add_config_flags(parser)
    actions = {a.dest: a for a in parser._actions}
    for f in dataclasses.fields(VPNConfig):
        if f.name == "name":
            continue
        action = actions[f.name]
        first_words = " ".join(field_doc(f.name).split()[:4]).replace("%", "%%")
        assert action.help.startswith(first_words), (f.name, action.help)
        assert (action.choices is not None) == (f.metadata.get("choices") is not None), f.name
    assert tuple(actions["output"].choices) == ("sigmoid", "softmax")
    # A sentence ends at ". " + capital, not inside "Eq. 5": the output's help keeps both of its kinds.
    assert "softmax" in actions["output"].help


def test_field_docs_cover_every_field_and_fail_for_an_unknown_one():
    assert all(field_doc(n) for n in field_names() if n != "name")
    with pytest.raises(KeyError):
        field_doc("image_size")  # an alias, not a field


def test_config_help_marks_the_test_presets():
    text = cli.presets_help()
    test_part = text.split("test suite only")[1]
    for name in preset_names("test"):
        assert name in test_part
    for name in preset_names("cpu"):
        assert name not in test_part


def test_max_minutes_alone_trains_until_the_budget_and_says_what_stops_the_run():
    args, config = train.parse(["--config", "tiny", "--max_minutes", "5"])
    assert config.steps == train.UNTIL_BUDGET
    assert train._stopping(config, args) == "trains until the 5-minute budget runs out"
    assert config.steps >= 2**31 - 1  # no step limit a run could reach
    args, config = train.parse(["--config", "tiny", "--max_minutes", "5", "--steps", "40"])
    assert config.steps == 40
    assert train._stopping(config, args) == "trains to step 40 or for 5 minutes, whichever comes first"
    args, config = train.parse(["--config", "tiny"])
    assert config.steps == get_config("tiny").steps
    assert train._stopping(config, args) == f"trains to step {config.steps}"


def test_xla_is_one_flag_and_the_earlier_name_still_works():
    assert train.parse(["--config", "tiny", "--xla"])[0].xla
    assert train.parse(["--config", "tiny", "--jit"])[0].xla
    assert not train.parse(["--config", "tiny"])[0].xla
    out = run_script("train.py", "--help", timeout=60).stdout
    assert "--xla" in out and "--jit" not in out


def test_default_split_is_the_datasets_test_split_and_bad_ones_are_named():
    assert commands.resolve_split(get_config("tiny"), None) == "test"
    assert commands.resolve_split(get_config("cpu_pushing_sim"), None) == "test_seen"
    assert commands.resolve_split(get_config("cpu_pushing_sim"), "test_novel") == "test_novel"
    with pytest.raises(SystemExit, match="'test' is not a held-out split of dataset 'pushing_sim'.*test_seen"):
        commands.resolve_split(get_config("cpu_pushing_sim"), "test")
    with pytest.raises(SystemExit, match="Choices: validation, test$"):
        commands.resolve_split(get_config("tiny"), "train")


def test_sample_takes_generate_frames_and_refuses_the_training_length_flag(tmp_path):
    out = run_script("sample.py", "--num_frames", "5", "--out", tmp_path, timeout=60)
    assert out.returncode != 0 and "--generate_frames" in out.stderr
    out = run_script("sample.py", "--generate_frames", "0", "--out", tmp_path, timeout=60)
    assert out.returncode != 0 and "--generate_frames must be >= 1" in out.stderr
    out = run_script("sample.py", "--workdir", "a", "--workdir", "b", "--checkpoint", "c", timeout=60)
    assert out.returncode != 0 and "--checkpoint names one model's checkpoint" in out.stderr


def test_evaluate_seed_is_one_int_like_every_other_command(capsys):
    with pytest.raises(SystemExit):
        evaluate.main(["--seed", "7", "0", "--workdir", "nowhere"])
    assert "unrecognized argument '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main(["--seed", "-1", "--workdir", "nowhere"])
    assert "argument --seed: expected a non-negative integer; got -1" in capsys.readouterr().err


def test_the_shipped_fallback_points_at_a_train_py_run_when_there_is_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert commands.workdir_or_shipped("mine", "cpu_moving_mnist") == "mine"  # given: no fallback, no message
    assert capsys.readouterr().err == ""
    commands.workdir_or_shipped(None, "cpu_moving_mnist")
    assert "pass --workdir DIR for a train.py run" in capsys.readouterr().err
    (tmp_path / "workdirs" / "cpu_moving_mnist" / "checkpoints").mkdir(parents=True)
    commands.workdir_or_shipped(None, "cpu_moving_mnist")
    assert "your train.py run in workdirs/cpu_moving_mnist is not it" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="pretrained/no_such_model is not here"):
        commands.workdir_or_shipped(None, "no_such_model")


@pytest.mark.large  # subprocesses
def test_scripts_name_the_shipped_model_they_fall_back_to():
    out = run_script("evaluate.py", "--split", "bogus", timeout=300)
    assert "no --workdir given: using the shipped model pretrained/cpu_moving_mnist" in out.stderr
    assert "loaded cpu_moving_mnist from" in out.stderr and "ckpt-" in out.stderr
    assert "'bogus' is not a held-out split" in out.stderr


@pytest.mark.parametrize(
    "argv, named",
    [(["--ssim", "4", "--best_of", "0"], "--best_of"), (["--ssim", "-1"], "--ssim"), (["--ink", "-2"], "--ink")],
)
def test_evaluate_refuses_sample_counts_below_one_before_loading_anything(argv, named):
    with pytest.raises(SystemExit) as e:
        evaluate.main([*argv, "--workdir", "/nonexistent/workdir"])  # refused before the workdir is read
    assert named in str(e.value.code) and "Received" in str(e.value.code), e.value.code
