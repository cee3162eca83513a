"""Known models, fetching them, and finding the one to use.

Nothing here touches the network unless ``fetch`` is called. The manifest
(``resources/models.json``, shipped as ``kiosk.resources``) lists every known
model with its download URL and sha256.

Where the default extractor is looked for, in order:

1. ``KIOSK_MODEL``: a path to a ``.tflite`` file;
2. ``KIOSK_MODEL_DIR``: a folder holding the manifest's files;
3. the user data folder, ``<user data dir>/kiosk/models`` (``~/.local/share/kiosk/models``
   on Linux), where ``kiosk-models fetch`` puts them.

In a folder the Edge TPU extractor wins when an Edge TPU is plugged in; otherwise
the CPU one is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import platformdirs

from kiosk.safe_io import FileRefused, check_regular_file, expand_user
from kiosk.vision.runtime import edgetpu_available

MANIFEST = "models.json"


class ModelError(ValueError):
    """A model could not be found, fetched or verified; the message says what to do."""


@dataclass(frozen=True)
class ModelInfo:
    """One entry of the model manifest."""

    name: str
    file: str
    url: str
    sha256: str
    kind: str  # "extractor" or "classifier"
    edgetpu: bool
    input_size: tuple[int, int]
    feature_dim: int
    description: str


def manifest() -> list[ModelInfo]:
    """Every model the manifest knows, in its order."""
    text = resources.files("kiosk.resources").joinpath(MANIFEST).read_text("utf-8")
    entries = json.loads(text)["models"]
    return [ModelInfo(**{**entry, "input_size": tuple(entry["input_size"])}) for entry in entries]


def default_extractor() -> ModelInfo:
    """The manifest's default CPU extractor."""
    text = resources.files("kiosk.resources").joinpath(MANIFEST).read_text("utf-8")
    return find(json.loads(text)["default_extractor"])


def find(name: str) -> ModelInfo:
    """A manifest entry by name or file name; ``ModelError`` lists the known names."""
    models = manifest()
    for info in models:
        if name in (info.name, info.file):
            return info
    known = ", ".join(info.name for info in models)
    raise ModelError(f"unknown model {name!r}; known models: {known}")


def edgetpu_variant(info: ModelInfo) -> ModelInfo | None:
    """The ``_edgetpu`` twin of a CPU model, when the manifest has one."""
    try:
        return find(f"{info.name}_edgetpu")
    except ModelError:
        return None


def user_model_dir() -> Path:
    """Where ``kiosk-models fetch`` stores models by default."""
    return Path(platformdirs.user_data_dir("kiosk")) / "models"


def model_dirs() -> list[Path]:
    """The folders searched for models, in order."""
    folders = []
    if os.environ.get("KIOSK_MODEL_DIR"):
        folders.append(_expand(os.environ["KIOSK_MODEL_DIR"], "KIOSK_MODEL_DIR"))
    folders.append(user_model_dir())
    return folders


def resolve_model(model: str | os.PathLike[str] | None = None) -> Path:
    """The extractor file to use.

    Args:
        model: a path, a manifest name, or ``None`` for the default search order
            (see the module docstring).

    Raises:
        ModelError: nothing usable was found; the message says where it looked and
            how to get the model.
    """
    if model is not None:
        path = _expand(model, "model")
        if path.is_file():
            return path
        if os.path.lexists(path):
            _refuse_special(path, "model file")
        try:
            info = find(path.name if path.name.endswith(".tflite") else str(model))
        except ModelError:
            known = ", ".join(info.name for info in manifest())
            raise ModelError(
                f"model not found: {model} is neither a file nor a known model (known: {known})"
            ) from None
        return _find_in_dirs([info])
    if os.environ.get("KIOSK_MODEL"):
        path = _expand(os.environ["KIOSK_MODEL"], "KIOSK_MODEL")
        if not path.is_file():
            if os.path.lexists(path):
                _refuse_special(path, "KIOSK_MODEL: model file")
            raise ModelError(f"KIOSK_MODEL points to {path}, which is not a file")
        return path
    default = default_extractor()
    twin = edgetpu_variant(default)
    candidates = [twin, default] if twin is not None and edgetpu_available() else [default]
    return _find_in_dirs(candidates)


def _refuse_special(path: Path, what: str) -> None:
    """Raise ``ModelError`` saying what ``path`` is instead (a folder, a FIFO, a device...)."""
    try:
        check_regular_file(path, None, what)
    except FileRefused as error:
        raise ModelError(str(error)) from None
    raise ModelError(f"{path} is not a model file")  # pragma: no cover - a race


def _expand(text: str | os.PathLike[str], what: str) -> Path:
    """``~`` expanded; ``ModelError`` in one line for an unknown ``~user``."""
    try:
        return expand_user(text, what)
    except FileRefused as error:
        raise ModelError(str(error)) from None


def _find_in_dirs(candidates: list[ModelInfo]) -> Path:
    folders = model_dirs()
    for folder in folders:
        for info in candidates:
            path = folder / info.file
            if path.is_file():
                return path
    looked = ", ".join(str(folder) for folder in folders)
    raise ModelError(
        f"{candidates[-1].file} not found (looked in {looked}); run `kiosk-models fetch` "
        "(offline: `kiosk-models fetch --source FOLDER`) or pass the model's path"
    )


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_installed(info: ModelInfo, folder: Path) -> bool:
    """Whether ``folder`` holds the model with the right checksum."""
    path = folder / info.file
    return path.is_file() and sha256_of(path) == info.sha256


Progress = Callable[[int, int | None], None]
"""Called with (bytes done, total bytes or None)."""


def fetch(
    info: ModelInfo,
    dest: Path | None = None,
    source: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Get one model into ``dest`` (default: the user model folder), verified.

    Args:
        info: what to fetch.
        dest: the folder to put it in.
        source: a local folder to copy from, or a base URL; default
            ``KIOSK_MODEL_SOURCE`` when set, else the manifest URL.
        progress: optional byte-progress callback.

    Returns:
        The verified file. An existing good copy is kept as it is.

    Raises:
        ModelError: the source lacks the file, the download failed, or the
            checksum is wrong (nothing is left behind in ``dest``).
    """
    dest = dest or user_model_dir()
    target = dest / info.file
    if is_installed(info, dest):
        return target
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ModelError(f"cannot create {dest}: {error.strerror}") from None
    source = source or os.environ.get("KIOSK_MODEL_SOURCE") or None
    # Write next to the target and rename, so an interrupted fetch never leaves
    # a truncated model under the real name.
    handle, temp_name = tempfile.mkstemp(prefix=f".{info.file}.", dir=dest)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            _copy_from_source(info, source, out, progress)
        actual = sha256_of(temp)
        if actual != info.sha256:
            raise ModelError(
                f"{info.file}: checksum mismatch (expected {info.sha256[:12]}…, "
                f"got {actual[:12]}…); the file was not installed"
            )
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target


def _copy_from_source(info: ModelInfo, source: str | None, out, progress: Progress | None) -> None:
    if source and "://" not in source:
        path = _expand(source, "model source") / info.file
        if not path.is_file():
            raise ModelError(f"{info.file} is not in {path.parent}")
        with path.open("rb") as stream:
            shutil.copyfileobj(stream, out)
        return
    url = f"{source.rstrip('/')}/{info.file}" if source else info.url
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = response.length
            done = 0
            for chunk in iter(lambda: response.read(1 << 16), b""):
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise ModelError(f"download of {url} failed: {reason}") from None
