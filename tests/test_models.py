"""Model manifest, fetch (local folder and HTTP on loopback) and default-model search."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk import models
from kiosk.cli import models as models_cli
from tests.conftest import MODELS

EXTRACTOR = "mobilenet_v1_1.0_224_quant_embedding_extractor"


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the user data folder and model variables out of every test."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for name in ("KIOSK_MODEL", "KIOSK_MODEL_DIR", "KIOSK_MODEL_SOURCE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def http_models() -> Iterator[str]:
    """A loopback HTTP server over the shared models folder; yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(MODELS))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_manifest_matches_the_real_files() -> None:
    entries = models.manifest()
    assert {e.name for e in entries} >= {EXTRACTOR, f"{EXTRACTOR}_edgetpu"}
    for entry in entries:
        assert len(entry.sha256) == 64
        assert entry.url.endswith(entry.file)
        assert models.sha256_of(MODELS / entry.file) == entry.sha256
    assert models.default_extractor().name == EXTRACTOR
    assert models.edgetpu_variant(models.default_extractor()).edgetpu is True


def test_find_by_name_or_file_and_unknown() -> None:
    assert models.find(f"{EXTRACTOR}.tflite").name == EXTRACTOR
    with pytest.raises(models.ModelError, match="known models"):
        models.find("resnet")


def test_fetch_copies_from_a_local_folder_and_verifies(tmp_path: Path) -> None:
    info = models.find(EXTRACTOR)
    path = models.fetch(info, tmp_path / "dest", source=str(MODELS))
    assert path.read_bytes() == (MODELS / info.file).read_bytes()
    assert models.is_installed(info, tmp_path / "dest")
    # A second fetch keeps the good copy and needs no source at all.
    assert models.fetch(info, tmp_path / "dest", source=str(tmp_path / "nowhere")) == path


def test_fetch_uses_kiosk_model_source(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KIOSK_MODEL_SOURCE", str(MODELS))
    info = models.find(EXTRACTOR)
    assert models.fetch(info, tmp_path).is_file()


def test_corrupt_source_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    info = models.find(EXTRACTOR)
    source = tmp_path / "source"
    source.mkdir()
    content = bytearray((MODELS / info.file).read_bytes())
    content[1000] ^= 0xFF
    (source / info.file).write_bytes(bytes(content))
    dest = tmp_path / "dest"
    with pytest.raises(models.ModelError, match="checksum mismatch"):
        models.fetch(info, dest, source=str(source))
    assert list(dest.iterdir()) == []


def test_missing_file_in_source(tmp_path: Path) -> None:
    with pytest.raises(models.ModelError, match="is not in"):
        models.fetch(models.find(EXTRACTOR), tmp_path, source=str(tmp_path))


@pytest.mark.slow
def test_fetch_over_http(tmp_path: Path, http_models: str) -> None:
    info = models.find("mobilenet_v1_0.25_128_quant")
    seen: list[tuple[int, int | None]] = []
    path = models.fetch(
        info, tmp_path, source=http_models, progress=lambda d, t: seen.append((d, t))
    )
    assert models.sha256_of(path) == info.sha256
    assert seen[-1] == (path.stat().st_size, path.stat().st_size)


@pytest.mark.slow
def test_http_error_is_a_clean_model_error(tmp_path: Path, http_models: str) -> None:
    with pytest.raises(models.ModelError, match=r"download of .* failed"):
        models.fetch(models.find(EXTRACTOR), tmp_path, source=f"{http_models}/missing")
    assert list(tmp_path.iterdir()) == []


def test_resolve_explicit_path_name_and_errors(tmp_path: Path, monkeypatch) -> None:
    real = MODELS / f"{EXTRACTOR}.tflite"
    assert models.resolve_model(real) == real
    with pytest.raises(models.ModelError, match="neither a file nor a known model"):
        models.resolve_model(tmp_path / "typo.tflite")
    with pytest.raises(models.ModelError, match="is a folder, not a regular file"):
        models.resolve_model(tmp_path)
    monkeypatch.setenv("KIOSK_MODEL_DIR", str(MODELS))
    assert models.resolve_model(EXTRACTOR) == real


def test_default_search_order(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(models.ModelError, match="kiosk-models fetch"):
        models.resolve_model()
    # The user data folder, where fetch installs.
    installed = models.fetch(models.find(EXTRACTOR), source=str(MODELS))
    assert installed.parent == models.user_model_dir()
    assert models.resolve_model() == installed
    # KIOSK_MODEL_DIR is searched before it.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(MODELS / f"{EXTRACTOR}.tflite", other)
    monkeypatch.setenv("KIOSK_MODEL_DIR", str(other))
    assert models.resolve_model() == other / f"{EXTRACTOR}.tflite"
    # KIOSK_MODEL beats both.
    monkeypatch.setenv("KIOSK_MODEL", str(MODELS / "mobilenet_v1_0.25_128_quant.tflite"))
    assert models.resolve_model().name == "mobilenet_v1_0.25_128_quant.tflite"
    monkeypatch.setenv("KIOSK_MODEL", str(tmp_path / "gone.tflite"))
    with pytest.raises(models.ModelError, match="KIOSK_MODEL"):
        models.resolve_model()


def test_cli_fetch_list_where(tmp_path: Path, capsys) -> None:
    assert models_cli.main(["fetch", "--dir", str(tmp_path), "--source", str(MODELS)]) == 0
    assert "sha256 verified" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{EXTRACTOR}.tflite",
        f"{EXTRACTOR}_edgetpu.tflite",
    ]
    assert models_cli.main(["list", "--dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert listing.count("installed") == 2


def test_cli_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert models_cli.main(["fetch", "bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kiosk-models: error: unknown model 'bogus'")
    assert "Traceback" not in err
    assert models_cli.main(["where"]) == 2
    assert "kiosk-models fetch" in capsys.readouterr().err
