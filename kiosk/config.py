"""The kiosk's settings: built-in defaults, a TOML file, environment variables, flags.

Later sources win: default < file < environment < command-line flag. Every
effective value remembers where it came from, so ``kiosk --print-config`` can
say why the kiosk does what it does.

The file is looked for at ``--config PATH``, else ``KIOSK_CONFIG``, else
``<user config dir>/kiosk.toml`` (``~/.config/kiosk/kiosk.toml`` on Linux). A
missing default file is fine; a missing file that was asked for by name is not.
Example::

    source = "0"
    output = "/home/kiosk/models/booth.tflite"
    fullscreen = true
    burst_hz = 10.0
    max_samples_per_class = 2000   # captures stop beyond these limits
    max_memory_mb = 1024

    [training]
    num_iter = 60

    [operator]
    pin_hash = "scrypt$16384$8$1$...$..."
    unlock_seconds = 60

Problems (bad TOML, an unknown key, a wrong type, a value out of range) raise
``ConfigError`` whose one-line message names the key and the file. This module
never imports Qt.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from kiosk.atomic import atomic_write
from kiosk.learn.training import DEFAULT_TRAINING as _T
from kiosk.store import DEFAULT_MAX_BYTES, DEFAULT_MAX_SAMPLES_PER_CLASS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_ENV = "KIOSK_CONFIG"
CONFIG_NAME = "kiosk.toml"
DEFAULT_MAX_MB = DEFAULT_MAX_BYTES // 2**20


class ConfigError(ValueError):
    """The settings are unusable; the message is one line naming the key and its origin."""


@dataclass(frozen=True)
class Option:
    """One setting: its dotted key in the file, its type, default and allowed range."""

    key: str
    kind: type  # str, int, float or bool
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False  # None is a valid value (e.g. "no output configured")
    flag: str | None = None  # command-line flag, when it has one
    env: bool = True  # overridable through KIOSK_<KEY>
    secret: bool = False  # printed as "(set)" rather than its value

    @property
    def env_name(self) -> str:
        return "KIOSK_" + self.key.replace(".", "_").upper()

    @property
    def dest(self) -> str:
        """The attribute name on ``Settings`` and on the argparse namespace."""
        return self.key.replace(".", "_")


OPTIONS: tuple[Option, ...] = (
    Option("source", str, "0", "camera number, video file, image folder or 'demo'",
           flag="--source"),
    Option("model", str, None, "embedding extractor .tflite or model name", optional=True,
           flag="--model"),
    Option("output", str, None, "where Save writes (a .tflite path or a folder)", optional=True,
           flag="--output"),
    Option("fullscreen", bool, False, "kiosk mode: frameless full screen, operator lock",
           flag="--fullscreen"),
    Option("threads", int, None, "CPU threads for the extractor", minimum=1, maximum=256,
           optional=True, flag="--threads"),
    Option("burst_hz", float, 10.0, "samples a second while a capture button is held",
           minimum=0.5, maximum=30.0, flag="--burst-hz"),
    Option("max_samples_per_class", int, DEFAULT_MAX_SAMPLES_PER_CLASS,
           "samples a class may hold; captures stop beyond it", minimum=1, maximum=100_000,
           flag="--max-samples-per-class"),
    Option("max_memory_mb", int, DEFAULT_MAX_MB, "megabytes all samples may take (embeddings, "
           "thumbnails, images); captures stop beyond it", minimum=16, maximum=65_536,
           flag="--max-memory-mb"),
    Option("training.num_iter", int, _T.num_iter, "training iterations", minimum=1, maximum=100_000,
           flag="--num-iter"),
    Option("training.learning_rate", float, _T.learning_rate, "training step size", minimum=1e-6,
           maximum=100.0, flag="--learning-rate"),
    Option("training.batch_size", int, _T.batch_size, "rows per training block", minimum=1,
           maximum=1_000_000, flag="--batch-size"),
    Option("training.reg", float, _T.reg, "L2 regularization", minimum=0.0, maximum=1000.0,
           flag="--reg"),
    Option("models_dir", str, None, "folder of saved models: Save model writes there "
           "(default: <data dir>/saved-models)", optional=True),
    Option("projects_dir", str, None, "folder of saved projects (default: <data dir>/projects)",
           optional=True),
    Option("operator.pin_hash", str, None, "salted hash of the operator PIN (kiosk --set-pin)",
           optional=True, env=False, secret=True),
    Option("operator.unlock_seconds", float, 60.0, "idle seconds before the lock closes again",
           minimum=5.0, maximum=3600.0),
)  # fmt: skip

BY_KEY: dict[str, Option] = {option.key: option for option in OPTIONS}
TABLES = frozenset(key.split(".")[0] for key in BY_KEY if "." in key)


@dataclass(frozen=True)
class Settings:
    """The effective settings, and where each came from (``origins[key]``)."""

    source: str = "0"
    model: str | None = None
    output: str | None = None
    fullscreen: bool = False
    threads: int | None = None
    burst_hz: float = 10.0
    max_samples_per_class: int = DEFAULT_MAX_SAMPLES_PER_CLASS
    max_memory_mb: int = DEFAULT_MAX_MB
    training_num_iter: int = _T.num_iter
    training_learning_rate: float = _T.learning_rate
    training_batch_size: int = _T.batch_size
    training_reg: float = _T.reg
    models_dir: str | None = None
    projects_dir: str | None = None
    operator_pin_hash: str | None = None
    operator_unlock_seconds: float = 60.0
    config_path: Path | None = None
    config_exists: bool = False
    origins: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def value(self, key: str) -> Any:
        return getattr(self, BY_KEY[key].dest)

    def training_config(self, base: Any = None) -> Any:
        """A ``TrainingConfig``: ``base`` (default ``DEFAULT_TRAINING``) with these fields."""
        return dataclasses.replace(
            base if base is not None else _T,
            num_iter=self.training_num_iter,
            learning_rate=self.training_learning_rate,
            batch_size=self.training_batch_size,
            reg=self.training_reg,
        )


def default_config_path() -> Path:
    """``<user config dir>/kiosk.toml``."""
    return Path(platformdirs.user_config_dir("kiosk")) / CONFIG_NAME


def config_path(flag: str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The config file to use: the ``--config`` flag, else ``KIOSK_CONFIG``, else the default."""
    environ = os.environ if environ is None else environ
    if flag:
        return Path(flag).expanduser()
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV]).expanduser()
    return default_config_path()


def read_file(path: Path) -> dict[str, Any]:
    """The file's settings as ``{dotted key: raw value}``; ``ConfigError`` when unusable."""
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    flat: dict[str, Any] = {}
    for name, value in document.items():
        if name in TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [{name}] must be a table")
            for sub, subvalue in value.items():
                flat[f"{name}.{sub}"] = subvalue
        else:
            flat[name] = value
    for key in flat:
        if key not in BY_KEY:
            raise ConfigError(f"{path}: unknown key {key!r}{_suggestion(key)}")
    return flat


def _suggestion(key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(BY_KEY), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_value(option: Option, value: Any, where: str) -> Any:
    """``value`` converted to the option's type; ``ConfigError`` naming the key and ``where``."""
    kind = option.kind
    if value is None and option.optional:
        return None
    # bool is an int subclass: keep `threads = true` from meaning one thread.
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{where}: {option.key} must be {_KIND_NAMES[kind]}, got {value!r}")
    low, high = option.minimum, option.maximum
    if kind in (int, float) and (
        (low is not None and value < low) or (high is not None and value > high)
    ):
        raise ConfigError(f"{where}: {option.key} must be between {low:g} and {high:g}, "
                          f"got {value!r}")  # fmt: skip
    if option.key == "operator.pin_hash":
        from kiosk.pin import is_pin_hash

        if not is_pin_hash(value):
            raise ConfigError(
                f"{where}: operator.pin_hash is not a PIN hash; set it with `kiosk --set-pin`"
            )
    return value


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_text(option: Option, text: str, where: str) -> Any:
    """A value given as text (environment variable or flag), converted and checked."""
    value: Any = text
    try:
        if option.kind is bool:
            if text.strip().lower() not in _TRUE | _FALSE:
                raise ValueError
            value = text.strip().lower() in _TRUE
        elif option.kind is int:
            value = int(text)
        elif option.kind is float:
            value = float(text)
    except ValueError:
        raise ConfigError(
            f"{where}: {option.key} must be {_KIND_NAMES[option.kind]}, got {text!r}"
        ) from None
    return check_value(option, value, where)


def load(
    path: Path | None = None,
    *,
    explicit: bool = False,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """The effective settings.

    Args:
        path: the config file (default: ``config_path()``).
        explicit: the file was named (``--config`` or ``KIOSK_CONFIG``), so it must exist.
        environ: the environment (default ``os.environ``); ``KIOSK_<KEY>`` overrides.
        flags: ``{dotted key: value}`` of the flags actually given; they win over all.
            Values are already typed (argparse did it) and are range-checked here.

    Raises:
        ConfigError: one line naming the offending key and where it came from.
    """
    environ = os.environ if environ is None else environ
    path = path if path is not None else config_path(environ=environ)
    values = {option.key: option.default for option in OPTIONS}
    origins = {option.key: "default" for option in OPTIONS}
    exists = path.is_file()
    if exists:
        for key, raw in read_file(path).items():
            values[key] = check_value(BY_KEY[key], raw, str(path))
            origins[key] = str(path)
    elif explicit:
        raise ConfigError(f"{path}: config file not found")
    for option in OPTIONS:
        if option.env and environ.get(option.env_name):
            where = f"env {option.env_name}"
            values[option.key] = parse_text(option, environ[option.env_name], where)
            origins[option.key] = where
    for key, value in (flags or {}).items():
        option = BY_KEY[key]
        where = f"flag {option.flag}"
        values[key] = check_value(option, value, where)
        origins[key] = where
    return Settings(
        **{BY_KEY[key].dest: value for key, value in values.items()},
        config_path=path,
        config_exists=exists,
        origins=origins,
    )


def describe(settings: Settings) -> str:
    """The ``--print-config`` report: every key, its value and where it came from."""
    state = "" if settings.config_exists else " (not found: built-in defaults)"
    lines = [f"# config file: {settings.config_path}{state}"]
    rows = []
    for option in OPTIONS:
        value = settings.value(option.key)
        if option.secret:
            shown = "(set)" if value is not None else "(not set)"
        elif value is None:
            shown = "(not set)"
        else:
            shown = _toml_value(value)
        rows.append((f"{option.key} = {shown}", settings.origins.get(option.key, "default")))
    width = max(len(text) for text, _ in rows)
    lines += [f"{text.ljust(width)}  # {origin}" for text, origin in rows]
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


# ------------------------------------------------------------- editing the file
_TABLE_LINE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]\s*(#.*)?$")
_PIN_LINE = re.compile(r"^\s*pin_hash\s*=")
_DOTTED_PIN_LINE = re.compile(r"^\s*operator\s*\.\s*pin_hash\s*=")


def set_pin_hash(path: Path, pin_hash: str | None) -> None:
    """Write (or with ``None`` remove) ``pin_hash`` under ``[operator]`` in the file.

    The rest of the file, comments included, is kept as it is: it is edited as
    text, then parsed again to make sure the result is still valid.
    """
    text = path.read_text("utf-8") if path.is_file() else ""
    if text:
        read_file(path)  # refuse to edit a file that is already broken
    lines = text.splitlines()
    table: str | None = None
    operator_at: int | None = None
    kept: list[str] = []
    for line in lines:
        match = _TABLE_LINE.match(line)
        if match:
            table = match.group(1)
            if table == "operator":
                operator_at = len(kept)
        elif (table == "operator" and _PIN_LINE.match(line)) or (
            table is None and _DOTTED_PIN_LINE.match(line)
        ):
            continue  # the old hash goes, whatever happens next
        kept.append(line)
    if pin_hash is not None:
        entry = f'pin_hash = "{pin_hash}"'
        if operator_at is None:
            if kept and kept[-1].strip():
                kept.append("")
            kept += ["[operator]", entry]
        else:
            kept.insert(operator_at + 1, entry)
    new_text = "\n".join(kept) + "\n" if kept else ""
    try:
        tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as error:  # pragma: no cover - defensive
        raise ConfigError(f"{path}: could not update pin_hash: {error}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, new_text.encode("utf-8"))


def flags_from_namespace(namespace: Any, given: Callable[[str], bool]) -> dict[str, Any]:
    """``{dotted key: value}`` for the options whose flag ``given(dest)`` says was used."""
    return {
        option.key: getattr(namespace, option.dest)
        for option in OPTIONS
        if option.flag is not None and given(option.dest)
    }
