"""The bad-input corpus for what is read from disk: damaged autosaves and projects.

Generated, not picked: every file of a real journal (the state record, a
segment, the head) is replaced by each kind of bad file (a FIFO, /dev/zero, a
folder, empty, truncated, noise, missing), every key of the state record by
each kind of bad value, and the arrays by lying headers, pickles and zip
bombs. Each case runs through the two readers a user reaches (the autosave
restore at start, Open project), in a process of its own under a timeout:
0 hangs, 0 tracebacks, 0 empty messages, and an Open project that fails
leaves the session as it was.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
import traceback
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import fast_sample

TIMEOUT_S = 30.0
HUNG = -999


@dataclass(frozen=True)
class Damage:
    """One way to damage a journal folder."""

    id: str
    apply: Callable[[Path], None]


# -- damage to whole files -----------------------------------------------------------


def _fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)  # nobody writes: a reader that opens it waits for ever


def _dev_zero(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to("/dev/zero")


def _folder(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.mkdir()


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])


def _noise(path: Path) -> None:
    path.write_bytes(np.random.default_rng(7).bytes(path.stat().st_size))


def _missing(path: Path) -> None:
    path.unlink()


FILE_DAMAGE = {
    "fifo": _fifo,
    "dev-zero": _dev_zero,
    "folder": _folder,
    "empty": _empty,
    "truncated": _truncated,
    "noise": _noise,
    "missing": _missing,
}


# -- damage to the state record --------------------------------------------------------

BAD_VALUES = {
    "null": None,
    "text": "x",
    "negative": -1,
    "huge-int": 2**70,
    "list": [],
    "object": {},
    "float": 1.5,
}


def _edit_state(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        state = json.loads((folder / "journal.json").read_text())
        change(state)
        (folder / "journal.json").write_text(json.dumps(state))

    return apply


def _set(path: tuple, value: object) -> Callable[[dict], None]:
    def change(state: dict) -> None:
        target = state
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return change


_DELETE = object()
STATE_PATHS = [
    ("format",),
    ("version",),
    ("role",),
    ("extractor",),
    ("extractor", "feature_dim"),
    ("classes",),
    ("classes", 0),
    ("classes", 0, "id"),
    ("classes", 0, "name"),
    ("next_ids",),
    ("segments",),
    ("segments", 0),
    ("segments", 0, "file"),
    ("segments", 0, "rows"),
    ("removed",),
    ("head",),
    ("head", "file"),
    ("head", "class_ids"),
    ("head", "logit_min"),
    ("head", "settings"),
    ("head", "result"),
    ("settings",),
]


def _special_states() -> Iterator[Damage]:
    def many(state: dict) -> None:
        state["classes"] = [{"id": i, "name": f"c{i}"} for i in range(100_000)]

    yield Damage("state/100000-classes", _edit_state(many))
    yield Damage(
        "state/escaping-segment",
        _edit_state(_set(("segments", 0, "file"), "../../etc/passwd")),
    )
    yield Damage("state/escaping-head", _edit_state(_set(("head", "file"), "/dev/zero")))
    yield Damage(
        "state/removed-10^12",
        _edit_state(_set(("removed",), [[0, 10**12]])),
    )
    yield Damage("state/removed-backwards", _edit_state(_set(("removed",), [[5, 2]])))
    yield Damage(
        "state/duplicate-class-ids",
        _edit_state(lambda s: s["classes"].append(dict(s["classes"][0], name="other"))),
    )
    yield Damage(
        "state/duplicate-segment",
        _edit_state(lambda s: s["segments"].append(s["segments"][0])),
    )
    yield Damage("state/newer-version", _edit_state(_set(("version",), 99)))
    yield Damage("state/wrong-feature-size", _edit_state(_set(("extractor", "feature_dim"), 99)))

    def deep(folder: Path) -> None:
        (folder / "journal.json").write_text("[" * 100_000 + "]" * 100_000)

    yield Damage("state/nested-100000-deep", deep)

    def nan(folder: Path) -> None:
        text = (folder / "journal.json").read_text()
        (folder / "journal.json").write_text(text.replace('"rows":', '"rows":NaN,"x":', 1))

    yield Damage("state/nan", nan)

    def bom(folder: Path) -> None:  # a BOM is fine: this one must restore
        data = (folder / "journal.json").read_bytes()
        (folder / "journal.json").write_bytes(b"\xef\xbb\xbf" + data)

    yield Damage("state/bom", bom)

    def latin1(folder: Path) -> None:
        (folder / "journal.json").write_bytes(b'{"format": "kiosk-journal", "x": "\xe9"}')

    yield Damage("state/not-utf8", latin1)


# -- damage to the arrays -----------------------------------------------------------


def _rewrite_member(
    name: str, data: bytes | Callable[[], bytes], compress: bool = False
) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        (segment,) = folder.glob("seg-*.npz")
        with zipfile.ZipFile(segment) as archive:
            members = {n: archive.read(n) for n in archive.namelist()}
        members[name] = data() if callable(data) else data
        kind = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        with zipfile.ZipFile(segment, "w", kind) as archive:
            for member, content in members.items():
                archive.writestr(member, content)

    return apply


def _npy_header(shape: tuple, descr: str = "<i8") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return out.getvalue()


def _array_damage() -> Iterator[Damage]:
    yield Damage("npz/ids-claims-10^12", _rewrite_member("ids.npy", _npy_header((10**12,))))
    yield Damage(
        "npz/embeddings-claim-10^9-rows",
        _rewrite_member("embeddings.npy", _npy_header((10**9, 12), "<f4")),
    )
    pickled = io.BytesIO()
    np.save(pickled, np.array([object()], dtype=object), allow_pickle=True)
    yield Damage("npz/pickled-ids", _rewrite_member("ids.npy", pickled.getvalue()))

    def bomb(folder: Path) -> None:
        """thumbnails.npy becomes 1.6 GB of zeros deflated to a few MB, written in chunks."""
        (segment,) = folder.glob("seg-*.npz")
        with zipfile.ZipFile(segment) as archive:
            members = {n: archive.read(n) for n in archive.namelist() if n != "thumbnails.npy"}
        with zipfile.ZipFile(segment, "w", zipfile.ZIP_DEFLATED) as archive:
            for member, content in members.items():
                archive.writestr(member, content)
            with archive.open("thumbnails.npy", "w", force_zip64=True) as out:
                out.write(_npy_header((12, 6000, 6000, 3), "|u1"))
                zeros = bytes(2**24)
                for _ in range(12 * 6000 * 6000 * 3 // 2**24):
                    out.write(zeros)
                out.write(bytes(12 * 6000 * 6000 * 3 % 2**24))

    yield Damage("npz/zip-bomb", bomb)

    def many(folder: Path) -> None:
        (segment,) = folder.glob("seg-*.npz")
        with zipfile.ZipFile(segment, "a") as archive:
            for k in range(200):
                archive.writestr(f"extra{k}.npy", _npy_header((0,)))

    yield Damage("npz/200-members", many)
    yield Damage(
        "npz/nan-embeddings",
        _rewrite_member(
            "embeddings.npy",
            _npy_header((12, 12), "<f4") + np.full((12, 12), np.nan, np.float32).tobytes(),
        ),
    )


def damages() -> Iterator[Damage]:
    for file in ("journal.json", "seg", "head"):
        for kind, make in FILE_DAMAGE.items():

            def apply(folder: Path, file: str = file, make: Callable = make) -> None:
                path = folder / file if file == "journal.json" else next(folder.glob(f"{file}-*"))
                make(path)

            yield Damage(f"{file}/{kind}", apply)
    for path in STATE_PATHS:
        yield Damage(f"state/{'.'.join(map(str, path))}/delete", _edit_state(_set(path, _DELETE)))
        for name, value in BAD_VALUES.items():
            yield Damage(f"state/{'.'.join(map(str, path))}/{name}", _edit_state(_set(path, value)))
    yield from _special_states()
    yield from _array_damage()


DAMAGES = list(damages())


# -- running a reader in a child -------------------------------------------------------


def _child(reader: str, folder: str, result: str) -> None:
    """Restore or open ``folder``; write "<code>\\n<message>" to ``result``."""
    from kiosk.persist import Autosaver, OtherModelError, ProjectError, load_project
    from kiosk.session import TeachingSession
    from tests.fakes import FakeExtractor, picture

    code, text = 1, ""
    try:
        session = TeachingSession(FakeExtractor())
        session.add_class("mine")
        session.capture(0, picture(1))
        before = session.store.snapshot().samples
        if reader == "restore":
            report = Autosaver(session, folder).restore()
            code, text = 0, "nothing" if report is None else report.message()
        else:
            try:
                load_project(folder, FakeExtractor(), session=session)
                code, text = 0, "opened"
            except ProjectError as error:
                # All or nothing: a project that does not open changes nothing.
                unchanged = session.store.snapshot().samples == before
                code, text = (2 if unchanged else 4), str(error)
    except OtherModelError as error:
        code, text = 3, str(error)
    except BaseException:
        code, text = 1, traceback.format_exc()
    Path(result).write_text(f"{code}\n{text}")
    os._exit(0)


def _context() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["kiosk.persist", "kiosk.session", "tests.fakes"])
    return context


def run_reader(reader: str, folder: Path, result: Path) -> tuple[int, str]:
    process = _context().Process(
        target=_child, args=(reader, str(folder), str(result)), daemon=True
    )
    process.start()
    process.join(TIMEOUT_S)
    if process.is_alive():
        process.kill()
        process.join(10)
        return HUNG, ""
    if not result.exists():
        return 1, f"the child died (exit {process.exitcode})"
    code, _, text = result.read_text().partition("\n")
    return int(code), text


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, Path]:
    """A real autosave and a real project of a trained session."""
    from kiosk.persist import Autosaver, save_project
    from kiosk.session import TeachingSession
    from tests.fakes import FakeExtractor, picture

    root = tmp_path_factory.mktemp("templates")
    session = TeachingSession(FakeExtractor())
    for c, name in enumerate(("red", "blue", "green")):
        index = session.add_class(name)
        for k in range(4):
            session.capture(index, picture(10 * c + k))
    session.train()
    saver = Autosaver(session, root / "autosave")
    saver.start()
    saver.close()
    save_project(session, root / "project")
    return {"restore": root / "autosave", "open": root / "project"}


@pytest.mark.parametrize("reader", ["restore", "open"])
@pytest.mark.parametrize("damage", fast_sample(DAMAGES, [d.id for d in DAMAGES]))
def test_a_damaged_journal_is_a_clear_line_never_a_crash(
    templates: dict[str, Path], tmp_path: Path, damage: Damage, reader: str
) -> None:
    folder = tmp_path / "journal"
    shutil.copytree(templates[reader], folder)
    damage.apply(folder)
    code, text = run_reader(reader, folder, tmp_path / "result")
    assert code != HUNG, "hung"
    assert code != 1, text  # a traceback
    assert code != 4, "a failed Open project changed the session"
    assert text.strip() and "\n" not in text.strip(), repr(text)
    if reader == "restore" and code == 0 and text != "nothing":
        # Restored, or moved aside whole (then the kiosk starts fresh and says where).
        assert text.startswith("Restored") or "moved to" in text, text
