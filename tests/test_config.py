"""Settings: default < file < environment < flag, the report, and one-line errors."""

from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk import config
from kiosk.cli.kiosk import main, parse_args
from kiosk.learn import DEFAULT_TRAINING
from kiosk.pin import hash_pin, verify_pin


def write(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """An environment whose default config file lives in tmp (never the real user's)."""
    return {config.CONFIG_ENV: str(tmp_path / "kiosk.toml")}


def test_defaults_without_a_file(tmp_path):
    settings = config.load(tmp_path / "missing.toml", environ={})
    assert settings.source == "0" and settings.output is None and not settings.fullscreen
    assert settings.burst_hz == 10.0
    assert settings.training_config() == DEFAULT_TRAINING
    assert set(settings.origins.values()) == {"default"}
    assert not settings.config_exists


def test_precedence_default_file_env_flag(tmp_path):
    path = write(
        tmp_path / "kiosk.toml",
        'source = "file.mp4"\noutput = "/srv/out"\nburst_hz = 4\n'
        "[training]\nnum_iter = 100\nreg = 0.01\n",
    )
    environ = {"KIOSK_SOURCE": "env.mp4", "KIOSK_BURST_HZ": "6", "KIOSK_TRAINING_REG": "0.5"}
    settings = config.load(path, environ=environ, flags={"burst_hz": 8.0})
    assert settings.output == "/srv/out"  # file
    assert settings.source == "env.mp4"  # env beats file
    assert settings.burst_hz == 8.0  # flag beats env and file
    assert settings.training_num_iter == 100 and settings.training_reg == 0.5
    assert settings.training_learning_rate == DEFAULT_TRAINING.learning_rate  # default
    assert settings.origins == {
        **{key: "default" for key in config.BY_KEY},
        "output": str(path),
        "training.num_iter": str(path),
        "source": "env KIOSK_SOURCE",
        "training.reg": "env KIOSK_TRAINING_REG",
        "burst_hz": "flag --burst-hz",
    }
    training = settings.training_config()
    assert (training.num_iter, training.reg) == (100, 0.5)
    assert training.optimizer == DEFAULT_TRAINING.optimizer  # untouched fields stay


def test_config_path_flag_then_env_then_default(tmp_path):
    assert config.config_path("a.toml", {config.CONFIG_ENV: "b.toml"}) == Path("a.toml")
    assert config.config_path(None, {config.CONFIG_ENV: "b.toml"}) == Path("b.toml")
    assert config.config_path(None, {}) == config.default_config_path()
    assert config.default_config_path().name == "kiosk.toml"


def test_parse_args_merges_file_env_and_flags(tmp_path, env):
    write(Path(env[config.CONFIG_ENV]), "fullscreen = true\nthreads = 3\nburst_hz = 2.5\n")
    args = parse_args(["--no-fullscreen", "--num-iter", "7"], environ=env)
    assert (args.fullscreen, args.threads, args.burst_hz) == (False, 3, 2.5)
    assert args.training_num_iter == 7
    assert args.settings.origins["fullscreen"] == "flag --fullscreen"
    other = write(tmp_path / "other.toml", 'source = "demo"\n')
    assert parse_args(["--config", str(other)], environ=env).source == "demo"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("sorce = 1\n", ["unknown key 'sorce'", "did you mean 'source'"]),
        ("[training]\nnum_iters = 5\n", ["unknown key 'training.num_iters'"]),
        ("burst_hz = 'fast'\n", ["burst_hz must be a number", "'fast'"]),
        ("fullscreen = 1\n", ["fullscreen must be true or false"]),
        ("threads = true\n", ["threads must be an integer"]),
        ("[training]\nnum_iter = 0\n", ["training.num_iter must be between 1 and"]),
        ("burst_hz = 1000\n", ["burst_hz must be between 0.5 and 30"]),
        ("source = \n", ["invalid TOML", "line 1"]),
        ("training = 3\n", ["[training] must be a table"]),
        ('[operator]\npin_hash = "1234"\n', ["operator.pin_hash is not a PIN hash"]),
    ],
)
def test_file_errors_name_the_key_and_file(tmp_path, capsys, text, words):
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(config.ConfigError) as error:
        config.load(path, environ={})
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    for word in words:
        assert word in message
    # The command line says the same in one line, with exit status 2.
    assert main(["--config", str(path), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kiosk: {path}: ") and err.count("\n") == 1


def test_env_and_flag_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(config.CONFIG_ENV, str(write(tmp_path / "kiosk.toml", "")))
    with pytest.raises(config.ConfigError, match="env KIOSK_THREADS: threads must be an integer"):
        config.load(tmp_path / "none.toml", environ={"KIOSK_THREADS": "many"})
    with pytest.raises(config.ConfigError, match="KIOSK_FULLSCREEN: fullscreen must be true"):
        config.load(tmp_path / "none.toml", environ={"KIOSK_FULLSCREEN": "maybe"})
    assert config.load(tmp_path / "none.toml", environ={"KIOSK_FULLSCREEN": "yes"}).fullscreen
    assert main(["--burst-hz", "0", "--print-config"]) == 2
    assert "flag --burst-hz: burst_hz must be between" in capsys.readouterr().err


def test_named_config_must_exist(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "nope.toml"), "--print-config"]) == 2
    assert "nope.toml: config file not found" in capsys.readouterr().err


def test_print_config_shows_values_and_origins(tmp_path, capsys, monkeypatch):
    path = write(
        tmp_path / "kiosk.toml",
        f'output = "/srv/booth"\n[operator]\npin_hash = "{hash_pin("4321")}"\n',
    )
    monkeypatch.setenv(config.CONFIG_ENV, str(path))
    monkeypatch.setenv("KIOSK_BURST_HZ", "3")
    assert main(["--print-config", "--source", "demo"]) == 0
    out = capsys.readouterr().out
    lines = {line.split("=")[0].strip(): line for line in out.splitlines() if "=" in line}
    assert out.splitlines()[0] == f"# config file: {path}"
    assert lines["source"].split("#")[-1].strip() == "flag --source"
    assert '"demo"' in lines["source"]
    assert '"/srv/booth"' in lines["output"] and lines["output"].endswith(f"# {path}")
    assert "3.0" in lines["burst_hz"] and lines["burst_hz"].endswith("# env KIOSK_BURST_HZ")
    assert lines["fullscreen"].endswith("# default")
    # The hash itself is never printed.
    assert "(set)" in lines["operator.pin_hash"] and "scrypt" not in out


def test_set_pin_and_clear_pin_keep_the_rest_of_the_file(tmp_path, monkeypatch, capsys):
    path = write(
        tmp_path / "kiosk.toml",
        '# booth settings\nsource = "demo"\n\n[operator]\nunlock_seconds = 30\n',
    )
    answers = iter(["2468", "2468"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["--config", str(path), "--set-pin"]) == 0
    settings = config.load(path, environ={})
    assert verify_pin("2468", settings.operator_pin_hash)
    assert settings.source == "demo" and settings.operator_unlock_seconds == 30
    text = path.read_text()
    assert "# booth settings" in text and "2468" not in text

    # Setting it again replaces the hash rather than adding a second one.
    answers = iter(["1357", "1357"])
    assert main(["--config", str(path), "--set-pin"]) == 0
    assert path.read_text().count("pin_hash") == 1
    assert verify_pin("1357", config.load(path, environ={}).operator_pin_hash)

    assert main(["--config", str(path), "--clear-pin"]) == 0
    settings = config.load(path, environ={})
    assert settings.operator_pin_hash is None and settings.operator_unlock_seconds == 30
    assert "pin_hash" not in path.read_text()
    capsys.readouterr()


def test_set_pin_creates_the_file_and_refuses_bad_pins(tmp_path, monkeypatch, capsys):
    path = tmp_path / "new" / "kiosk.toml"
    for answers, reason in (
        (["12", "12"], "4 to 8 digits"),
        (["12ab", "12ab"], "digits only"),
        (["1234", "4321"], "differ"),
    ):
        replies = iter(answers)
        monkeypatch.setattr("getpass.getpass", lambda prompt="", r=replies: next(r))
        assert main(["--config", str(path), "--set-pin"]) == 2
        assert reason in capsys.readouterr().err
        assert not path.exists()
    replies = iter(["0000", "0000"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(replies))
    assert main(["--config", str(path), "--set-pin"]) == 0
    assert verify_pin("0000", config.load(path, environ={}).operator_pin_hash)


def test_clear_pin_without_a_file(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "none.toml"), "--clear-pin"]) == 0
    assert "no PIN was set" in capsys.readouterr().out


def test_pin_hash_is_salted():
    first, second = hash_pin("1234"), hash_pin("1234")
    assert first != second and "1234" not in first
    assert verify_pin("1234", first) and verify_pin("1234", second)
    assert not verify_pin("1235", first)
    assert not verify_pin("1234", "scrypt$1$1$1$AA==$AA==")


def test_store_limits_precedence_validation_and_report(tmp_path, capsys, monkeypatch):
    path = write(tmp_path / "kiosk.toml", "max_samples_per_class = 500\nmax_memory_mb = 256\n")
    settings = config.load(path)
    assert (settings.max_samples_per_class, settings.max_memory_mb) == (500, 256)
    settings = config.load(path, environ={"KIOSK_MAX_MEMORY_MB": "128"})
    assert settings.max_memory_mb == 128 and settings.origins["max_memory_mb"].startswith("env")
    args = parse_args(
        ["--config", str(path), "--max-samples-per-class", "40", "--max-memory-mb", "64"],
        environ={"KIOSK_MAX_MEMORY_MB": "128"},
    )
    assert (args.max_samples_per_class, args.max_memory_mb) == (40, 64)
    defaults = config.load(tmp_path / "none.toml", environ={})
    assert (defaults.max_samples_per_class, defaults.max_memory_mb) == (2000, 1024)
    for text, words in (
        ("max_samples_per_class = 0", "max_samples_per_class must be between 1"),
        ("max_memory_mb = 1.5", "max_memory_mb must be an integer"),
        ("max_memory_mb = true", "max_memory_mb must be an integer"),
        ("max_memory_mb = 4", "max_memory_mb must be between 16"),
    ):
        with pytest.raises(config.ConfigError, match=words):
            config.load(write(tmp_path / "bad.toml", text))
    assert main(["--config", str(path), "--max-samples-per-class", "0", "--print-config"]) == 2
    assert "flag --max-samples-per-class" in capsys.readouterr().err
    monkeypatch.setenv(config.CONFIG_ENV, str(path))
    assert main(["--print-config", "--max-memory-mb", "64"]) == 0
    out = capsys.readouterr().out
    lines = {line.split("=")[0].strip(): line for line in out.splitlines() if "=" in line}
    assert "500" in lines["max_samples_per_class"] and lines["max_samples_per_class"].endswith(
        f"# {path}"
    )
    assert "64" in lines["max_memory_mb"] and lines["max_memory_mb"].endswith(
        "# flag --max-memory-mb"
    )


# -------------------------------------------------- numbers, files and text that lie
FLOATS = [option for option in config.OPTIONS if option.kind is float]


@pytest.mark.parametrize("option", FLOATS, ids=[option.key for option in FLOATS])
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e999"])
def test_non_finite_numbers_are_refused_everywhere(tmp_path, option, text):
    """nan compares false with every bound, so it used to pass the range check."""
    table, _, name = option.key.rpartition(".")
    line = f"{name} = {text}\n"
    path = write(tmp_path / "kiosk.toml", f"[{table}]\n{line}" if table else line)
    origins = [lambda: config.load(path, environ={})]
    if option.env:
        origins.append(lambda: config.load(tmp_path / "none.toml", environ={option.env_name: text}))
    if option.flag:
        origins.append(
            lambda: config.load(tmp_path / "none.toml", environ={}, flags={option.key: float(text)})
        )
    for load in origins:
        with pytest.raises(config.ConfigError, match=f"{option.key} must be a finite number"):
            load()


@given(text=st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_any_text_in_a_variable_is_a_value_or_one_line(text):
    for option in config.OPTIONS:
        if not option.env:
            continue
        try:
            value = config.load(Path("/nonexistent/kiosk.toml"),
                                environ={option.env_name: text}).value(option.key)  # fmt: skip
        except config.ConfigError as error:
            assert str(error) and "\n" not in str(error)
            continue
        if option.kind is float:
            assert math.isfinite(value)
            assert option.minimum <= value <= option.maximum


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "kiosk.toml"
    path.write_bytes('\ufeffsource = "demo"\n[training]\nnum_iter = 7\n'.encode())
    settings = config.load(path, environ={})
    assert settings.source == "demo" and settings.training_num_iter == 7


@pytest.mark.parametrize(
    "text",
    [
        "x = " + "[" * 100_000 + "]" * 100_000 + "\n",
        "x = " + "{a = " * 20_000 + "1" + "}" * 20_000 + "\n",
    ],
    ids=["arrays", "inline-tables"],
)
def test_deeply_nested_toml_is_one_line(tmp_path, text, capsys):
    path = write(tmp_path / "kiosk.toml", text)
    with pytest.raises(config.ConfigError) as error:
        config.load(path, environ={})
    assert str(error.value).startswith(f"{path}: invalid TOML") and "\n" not in str(error.value)
    assert main(["--config", str(path), "--print-config"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda tmp: (os.mkfifo(tmp / "fifo.toml"), tmp / "fifo.toml")[1], "named pipe (FIFO)"),
        (lambda tmp: Path("/dev/zero"), "character device"),
        (lambda tmp: tmp, "is a folder"),
        (lambda tmp: write(tmp / "big.toml", "# " + "x" * (2 << 20)), "the largest accepted"),
    ],
    ids=["fifo", "dev-zero", "folder", "2-MB"],
)
def test_a_config_path_that_is_not_a_small_file(tmp_path, capsys, make, words):
    path = make(tmp_path)
    with pytest.raises(config.ConfigError, match=re.escape(words)):
        config.load(path, explicit=True, environ={})
    assert main(["--config", str(path), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('source = "a\\u0000b"\n', "source must not contain control characters"),
        ('output = "two\\nlines"\n', "output must not contain control characters"),
        ('output = "~nosuchuser-kiosk/x.tflite"\n', "there is no user 'nosuchuser-kiosk'"),
        ("burst_hz = " + "9" * 400 + "\n", "burst_hz must be a number"),
    ],
)
def test_strings_and_paths_that_cannot_be_used(tmp_path, text, words):
    with pytest.raises(config.ConfigError, match=words):
        config.load(write(tmp_path / "kiosk.toml", text), environ={})


def test_environment_path_that_cannot_be_expanded(tmp_path, capsys):
    assert main(["--config", "~nosuchuser-kiosk/kiosk.toml", "--print-config"]) == 2
    assert "there is no user 'nosuchuser-kiosk'" in capsys.readouterr().err


# ---------------------------------------------------------- editing with tomlkit
BEFORE = """\
# The booth by the door.
source = "demo"   # the synthetic scene
burst_hz = 4.0

[operator]
# Locks again after a minute.
unlock_seconds = 60

[training]
num_iter = 30  # enough for five classes
"""


def test_editing_keeps_comments_and_formatting_exactly(tmp_path):
    path = write(tmp_path / "kiosk.toml", BEFORE)
    pin_hash = hash_pin("2468")
    config.set_pin_hash(path, pin_hash)
    after = path.read_text("utf-8")
    assert after == BEFORE.replace(
        "unlock_seconds = 60\n", f'unlock_seconds = 60\npin_hash = "{pin_hash}"\n'
    )
    config.set_pin_hash(path, None)
    assert path.read_text("utf-8") == BEFORE


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ('operator.pin_hash = "old"  # set by hand\nsource = "demo"\n', 'source = "demo"\n'),
        ("operator = { unlock_seconds = 20 }\n", "unlock_seconds = 20"),
        ("\ufeffburst_hz = 3\n", "\ufeffburst_hz = 3\n"),
    ],
    ids=["dotted", "inline-table", "bom"],
)
def test_editing_other_shapes_of_the_file(tmp_path, text, kept):
    path = tmp_path / "kiosk.toml"
    path.write_bytes(text.encode("utf-8"))
    pin_hash = hash_pin("1357")
    config.set_pin_hash(path, pin_hash)
    assert verify_pin("1357", config.load(path, environ={}).operator_pin_hash)
    assert path.read_text("utf-8").count("pin_hash") == 1
    config.set_pin_hash(path, None)
    assert "pin_hash" not in path.read_text("utf-8") and kept in path.read_text("utf-8")


def test_the_file_is_written_for_its_owner_only(tmp_path, monkeypatch):
    old_umask = os.umask(0o022)
    try:
        fresh = tmp_path / "new" / "kiosk.toml"
        config.set_pin_hash(fresh, hash_pin("1234"))
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o600 and config.is_private(fresh)
        loose = write(tmp_path / "kiosk.toml", 'source = "demo"\n')
        loose.chmod(0o644)
        config.set_pin_hash(loose, hash_pin("1234"))
        assert stat.S_IMODE(loose.stat().st_mode) == 0o600  # tightened
        loose.chmod(0o664)
        config.set_pin_hash(loose, None)  # clearing writes it too
        assert stat.S_IMODE(loose.stat().st_mode) == 0o600
    finally:
        os.umask(old_umask)


def test_a_broken_file_is_not_edited(tmp_path):
    path = write(tmp_path / "kiosk.toml", "source = \n")
    with pytest.raises(config.ConfigError, match="invalid TOML"):
        config.set_pin_hash(path, hash_pin("1234"))
    assert path.read_text() == "source = \n"
