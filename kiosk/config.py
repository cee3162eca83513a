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
import math
import os
import stat
import sys
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import tomlkit
import tomlkit.exceptions

from kiosk.atomic import atomic_write
from kiosk.learn.training import DEFAULT_TRAINING as _T
from kiosk.safe_io import FileRefused, expand_user, read_regular_file
from kiosk.store import DEFAULT_MAX_BYTES, DEFAULT_MAX_SAMPLES_PER_CLASS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_ENV = "KIOSK_CONFIG"
CONFIG_NAME = "kiosk.toml"
DEFAULT_MAX_MB = DEFAULT_MAX_BYTES // 2**20
# A settings file is a few hundred bytes; anything near this is not one.
MAX_CONFIG_BYTES = 1 << 20
# The file may hold the operator PIN's hash: only its owner reads it.
CONFIG_MODE = 0o600


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
    path: bool = False  # a file or folder name: "~user/..." must expand

    @property
    def env_name(self) -> str:
        return "KIOSK_" + self.key.replace(".", "_").upper()

    @property
    def dest(self) -> str:
        """The attribute name on ``Settings`` and on the argparse namespace."""
        return self.key.replace(".", "_")


OPTIONS: tuple[Option, ...] = (
    Option("source", str, "0", "camera number, video file, image folder or 'demo'",
           flag="--source", path=True),
    Option("model", str, None, "embedding extractor .tflite or model name", optional=True,
           flag="--model", path=True),
    Option("output", str, None, "where Save writes (a .tflite path or a folder)", optional=True,
           flag="--output", path=True),
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
    try:
        if flag:
            return expand_user(flag, "config file")
        if environ.get(CONFIG_ENV):
            return expand_user(environ[CONFIG_ENV], f"config file ({CONFIG_ENV})")
    except FileRefused as error:
        raise ConfigError(str(error)) from None
    return default_config_path()


def read_file(path: Path) -> dict[str, Any]:
    """The file's settings as ``{dotted key: raw value}``; ``ConfigError`` when unusable."""
    document = _parse(_read_text(path), path)
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


def _read_text(path: Path, *, keep_bom: bool = False) -> str:
    """The file's text; a UTF-8 byte order mark (Windows editors write one) is dropped."""
    try:
        data = read_regular_file(path, MAX_CONFIG_BYTES, "config file")
    except FileRefused as error:
        raise ConfigError(str(error)) from None
    try:
        return data.decode("utf-8" if keep_bom else "utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None


def _parse(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {' '.join(str(error).split())}") from None
    except RecursionError:
        # tomllib parses nested arrays recursively; a few thousand "[" exhaust the stack.
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None


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
        try:
            value = float(value) if ok else value
        except OverflowError:  # an integer beyond any float
            ok = False
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{where}: {option.key} must be {_KIND_NAMES[kind]}, got {_shown(value)}")
    # nan compares false with everything, so it would slip through the range check.
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{where}: {option.key} must be a finite number, got {_shown(value)}")
    if kind is str and any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
        raise ConfigError(
            f"{where}: {option.key} must not contain control characters, got {_shown(value)}"
        )
    if option.path:
        try:
            expand_user(value, option.key)
        except FileRefused as error:
            raise ConfigError(f"{where}: {error}") from None
    low, high = option.minimum, option.maximum
    if kind in (int, float) and (
        (low is not None and value < low) or (high is not None and value > high)
    ):
        raise ConfigError(f"{where}: {option.key} must be between {low:g} and {high:g}, "
                          f"got {_shown(value)}")  # fmt: skip
    if option.key == "operator.pin_hash":
        from kiosk.pin import is_pin_hash

        if not is_pin_hash(value):
            raise ConfigError(
                f"{where}: operator.pin_hash is not a PIN hash; set it with `kiosk --set-pin`"
            )
    return value


def _shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut short: a megabyte of junk in a variable stays a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
            f"{where}: {option.key} must be {_KIND_NAMES[option.kind]}, got {_shown(text)}"
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
    # A FIFO or a device is not "no file": read_file says what it is instead.
    exists = os.path.exists(path)
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
def set_pin_hash(path: Path, pin_hash: str | None) -> None:
    """Write (or with ``None`` remove) ``pin_hash`` under ``[operator]`` in the file.

    The file is edited with tomlkit, so everything else in it (comments, blank
    lines, key order, quoting, a byte order mark) stays as the user wrote it.
    The result is parsed again before it replaces the file, atomically and with
    mode 0600 (``CONFIG_MODE``): the hash lets anyone who reads it try every PIN
    offline, so a file that was readable by others is tightened.

    Raises:
        ConfigError: the existing file is unusable (it is left as it was).
        OSError: the new file could not be written.
    """
    text = ""
    if os.path.exists(path):
        read_file(path)  # refuse to edit a file that is already broken
        text = _read_text(path, keep_bom=True)
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    text = text.removeprefix(bom)
    try:
        document = tomlkit.parse(text)
    except (tomlkit.exceptions.TOMLKitError, RecursionError) as error:  # pragma: no cover
        raise ConfigError(f"{path}: could not update pin_hash: {error}") from None
    operator = document.get("operator")
    if pin_hash is None:
        if operator is not None and "pin_hash" in operator:
            del operator["pin_hash"]
    elif operator is None:
        table = tomlkit.table()
        table["pin_hash"] = pin_hash
        document["operator"] = table
    else:
        operator["pin_hash"] = pin_hash
    new_text = tomlkit.dumps(document)
    if new_text and not new_text.endswith("\n"):
        new_text += "\n"
    _parse(new_text, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (bom + new_text).encode("utf-8"), mode=CONFIG_MODE)


def is_private(path: Path) -> bool:
    """Whether only the owner may read the file (no group or other permission bits)."""
    return not stat.S_IMODE(os.stat(path).st_mode) & 0o077


def flags_from_namespace(namespace: Any, given: Callable[[str], bool]) -> dict[str, Any]:
    """``{dotted key: value}`` for the options whose flag ``given(dest)`` says was used."""
    return {
        option.key: getattr(namespace, option.dest)
        for option in OPTIONS
        if option.flag is not None and given(option.dest)
    }
