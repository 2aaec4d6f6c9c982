"""The face of ``medgan`` (issue #23, part 5): ``--help`` without torch, ``--version``, defaults in ``--help``, one
``--model`` vocabulary, ``--data`` required for a new run, ``medgan info --data`` and its exit status, DP that
switches off what it cannot honour, progress lines in logs."""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from medgan.cli import build_parser, main, resolve_train_config
from medgan.cli.training import check_data_given, train_values
from medgan.errors import ConfigError

from helpers import TINY, assert_one_error_line, listing

COMMANDS = ("train", "sample", "demo", "evaluate", "audit", "utility", "segutility", "translate", "bundle", "info",
            "prepare")


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def flat(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------------------------
# --help without torch, --version


def test_help_of_every_command_imports_no_torch():
    """A fresh interpreter prints every ``--help`` through the real entry point; torch is never imported."""
    script = textwrap.dedent(f"""
        import contextlib, io, sys
        from medgan.cli import main
        for argv in [["--help"], *[[name, "--help"] for name in {COMMANDS!r}]]:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    main(argv)
                except SystemExit as done:
                    assert done.code == 0, (argv, done.code)
            assert "usage: medgan" in out.getvalue(), argv
        print(sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "torchvision")))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    # The console entry itself (python -m medgan), as -X importtime lists every module it loads.
    timed = subprocess.run([sys.executable, "-X", "importtime", "-m", "medgan", "train", "--help"],
                           capture_output=True, text=True, timeout=120)
    assert timed.returncode == 0 and "usage: medgan train" in timed.stdout
    loaded = [line.rsplit("|", 1)[-1].strip() for line in timed.stderr.splitlines() if line.startswith("import time")]
    assert "medgan.cli.parser" in loaded and not [name for name in loaded if name.split(".")[0] == "torch"]


def test_version_prints_the_package_version(capsys):
    import medgan

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"medgan {medgan.__version__}\n"


# ---------------------------------------------------------------------------------------------------------------
# defaults in --help


def test_every_default_is_shown_once_and_none_is_noise():
    for name, parser in subcommands().items():
        text = parser.format_help()
        assert "default: None" not in text and "(default: False)" not in text, name
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.default in (None, False, argparse.SUPPRESS) or action.help is None:
                continue
            shown = formatter._expand_help(action)
            assert shown.count("default") == 1 and str(action.default) in shown, (name, action.dest, shown)
    assert "(default: 16)" in flat(subcommands()["sample"].format_help())
    assert "checkpoint (default: best)" in flat(subcommands()["bundle"].format_help())
    assert "generator steps to train (default: 2,000)" in flat(subcommands()["train"].format_help())


# ---------------------------------------------------------------------------------------------------------------
# one --model vocabulary


MODEL_NAMES = re.compile(r"a recipe \(([^)]*)\) or an architecture \(([^)]*)\)")


def test_an_unknown_model_lists_exactly_the_names_help_lists(tmp_path, capsys):
    from medgan.networks import GENERATORS
    from medgan.networks.translation import TRANSLATORS
    from medgan.training.tasks import RECIPES

    listed = MODEL_NAMES.search(flat(subcommands()["train"].format_help())).groups()
    line = assert_one_error_line(main(["train", "--data", "mni152", "--out", str(tmp_path / "run"), "--model",
                                       "nonsense"]), capsys, "unknown --model 'nonsense'")
    assert MODEL_NAMES.search(line).groups() == listed
    recipes, architectures = (names.split(", ") for names in listed)
    assert recipes == RECIPES.names() and "medgan" in recipes and "pix2pix" in recipes
    assert set(architectures) == set(GENERATORS.names()) | set(TRANSLATORS.names()) and "unet" in architectures
    # An architecture of another task is named as such, not as unknown.
    line = assert_one_error_line(main(["train", "--data", "mni152", "--out", str(tmp_path / "run"), "--model",
                                       "unet"]), capsys, "--model unet is an architecture of task paired or unpaired")
    assert not (tmp_path / "run").exists()


def test_the_torch_free_declarations_match_what_registers():
    from medgan.cli.parser import DIRECTIONS, EXPORT_FORMATS, TRANSLATE_FORMATS
    from medgan.export import WRITERS
    from medgan.inference import Direction
    from medgan.inference.files import OUTPUT_FORMATS
    from medgan.networks import DISCRIMINATORS, GENERATORS
    from medgan.networks.translation import TRANSLATORS
    from medgan.training.tasks import TASKS
    from medgan.training.tasks.declarations import DECLARED

    builtin = {"conditional", "paired", "unconditional", "unpaired"}
    assert builtin <= set(TASKS.names()) and set(TASKS.names()) == set(DECLARED.names())
    assert TASKS.default == DECLARED.default == "unconditional"
    for name in builtin:
        assert DECLARED.get(name).options == tuple(TASKS.get(name).cli_options), name
    assert set(DECLARED.get("unconditional").architectures) == set(GENERATORS.names()) == set(DISCRIMINATORS.names())
    assert set(DECLARED.get("paired").architectures) <= set(TRANSLATORS.names())
    assert list(EXPORT_FORMATS) == WRITERS.names()
    assert list(DIRECTIONS) == [direction.value for direction in Direction]
    assert TRANSLATE_FORMATS == OUTPUT_FORMATS


# ---------------------------------------------------------------------------------------------------------------
# --data is required for a new run


def parsed(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["train", "--out", "unused", *argv])


def test_a_new_run_without_data_is_refused_saying_how_to_get_some(tmp_path, capsys):
    before = listing(tmp_path)
    line = assert_one_error_line(main(["train", "--out", str(tmp_path / "run"), "--steps", "2", "--quiet"]), capsys,
                                 "--data is required", "--data mni152", "medgan demo")
    assert "--data PATH" in line and listing(tmp_path) == before
    config = tmp_path / "config.yaml"
    config.write_text("train:\n  steps: 2\n")
    assert_one_error_line(main(["train", "--config", str(config), "--out", str(tmp_path / "run")]), capsys,
                          "--data is required")
    with pytest.raises(ConfigError, match="--data is required"):
        check_data_given(train_values(parsed("--set", "train.steps=3"))[0])


@pytest.mark.parametrize("argv", [
    ["--data", "mni152"],
    ["--set", "data.source=mni152"],
    ["--pairs", "pairs.csv"],
    ["--domain-a", "mr", "--domain-b", "ct"],
])
def test_the_data_may_come_from_any_option_that_names_it(argv):
    check_data_given(train_values(parsed(*argv))[0])


def test_a_config_file_with_a_source_gives_the_data(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("data:\n  source: mni152\n")
    values, _ = train_values(parsed("--config", str(config)))
    check_data_given(values)
    assert resolve_train_config(parsed("--config", str(config))).data.source == "mni152"


# ---------------------------------------------------------------------------------------------------------------
# medgan info: --data, and exit 2 where training stops


def pictures(folder, count=2, broken=0):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray((rng.random((32, 32)) * 200 + 20).astype(np.uint8)).save(folder / f"slice{index}.png")
    for index in range(broken):
        (folder / f"broken{index}.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a PNG")
    return folder


def test_info_takes_data_like_train_and_exits_2_on_an_image_train_would_refuse(tmp_path, capsys):
    good = pictures(tmp_path / "good")
    assert main(["info", "--data", str(good)]) == 0 and "found 2 images" in capsys.readouterr().out
    assert main(["info", str(good)]) == 0 and "found 2 images" in capsys.readouterr().out
    assert_one_error_line(main(["info", str(good), "--data", str(tmp_path)]), capsys, "give the data once")
    assert_one_error_line(main(["info"]), capsys, "medgan info PATH (or --data PATH")
    mixed = pictures(tmp_path / "mixed", broken=1)
    code = main(["info", "--data", str(mixed)])
    captured = capsys.readouterr()
    assert code == 2 and "broken0.png" in captured.out  # the per-file report names the file
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {mixed}: 1 image of 3 could not be read")
    assert "training would stop at the first" in lines[0]


# ---------------------------------------------------------------------------------------------------------------
# DP switches off what it cannot honour


def test_dp_alone_switches_off_the_recipe_settings_it_cannot_honour(capsys):
    config = resolve_train_config(parsed("--data", "mni152", "--dp-epsilon", "10"))
    assert config.privacy.epsilon == 10.0 and config.model.minibatch_std is False
    assert "dp: model.minibatch_std switched off (it mixes samples across patients)" in capsys.readouterr().err
    notes: list[str] = []
    classic = resolve_train_config(parsed("--data", "mni152", "--dp-noise", "1.0", "--model", "dcgan"),
                                   note=notes.append)
    assert classic.model.spectral_norm is True and notes == [
        "dp: model.spectral_norm switched on (without it the dcgan discriminator has BatchNorm, which mixes samples "
        "across patients)"]
    assert resolve_train_config(parsed("--data", "mni152")).model.minibatch_std is True  # without DP: untouched


def test_dp_refuses_a_setting_the_user_chose(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"model\.minibatch_std must be off"):
        resolve_train_config(parsed("--data", "mni152", "--dp-epsilon", "10", "--set", "model.minibatch_std=true"))
    config = tmp_path / "config.yaml"
    config.write_text("loss:\n  r1_gamma: 1.0\n")
    with pytest.raises(ConfigError, match=r"loss\.r1_gamma must be 0"):
        resolve_train_config(parsed("--data", "mni152", "--dp-epsilon", "10", "--config", str(config)))


# ---------------------------------------------------------------------------------------------------------------
# progress bars in logs


def test_a_bar_on_a_stream_that_is_no_terminal_writes_plain_lines():
    from medgan.progress import LineProgress, progress_bar

    log = io.StringIO()
    now = [0.0]
    bar = progress_bar(total=8, desc="train", unit="step", file=log)
    assert isinstance(bar, LineProgress)
    bar._time = lambda: now[0]  # tqdm's clock, here one that moves 20 s per step: a line every 30 s or more
    bar._started = bar.start_t = bar.last_print_t = 0.0
    for _ in range(8):
        now[0] += 20.0
        bar.update(1)
    bar.set_postfix({"d": "0.5"})
    bar.close()
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and "\x1b" not in text
    assert 3 <= len(lines) <= 6 and lines[-1].startswith("train: 8/8 step (100%), ") and lines[-1].endswith("d=0.5")
    assert re.match(r"train: \d/8 step \(\d+%\), [\d.]+ step/s, elapsed \d\d:\d\d, eta \d\d:\d\d", lines[0])
    inner = io.StringIO()
    for _ in progress_bar(range(3), desc="features", leave=False, file=inner):
        pass
    assert inner.getvalue() == ""  # a short inner bar adds nothing to the log


def test_training_with_stderr_in_a_file_logs_lines_without_carriage_returns(tmp_path, tiny_brain, capsys):
    argv = [arg for arg in TINY if arg != "--quiet"]
    assert main(["train", "--data", str(tiny_brain), "--out", str(tmp_path / "run"), "--steps", "2", *argv]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and re.search(r"^train: 2/2 step \(100%\), ", err, re.M), err
