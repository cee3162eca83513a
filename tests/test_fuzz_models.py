"""Bounded fuzz of model loading and serializing: clean ValueErrors, never a crash.

Mutants (bit flips, byte overwrites, truncations, splices) of the real
extractor and the small MobileNet classifier go through ``load_interpreter``,
``EmbeddingExtractor``, ``inspect_extractor`` and ``append_softmax_head`` in a
child process (``tests/fuzz_models_child.py``), so a segfault or an abort in
native code fails this test instead of killing pytest. The child runs under a
4 GB address-space limit: a mutant that makes the runtime allocate without
bound fails with MemoryError-like errors (or dies) instead of swapping the
machine to a halt.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CPU_EXTRACTOR, MOBILENET_V1_SMALL

CHILD = Path(__file__).with_name("fuzz_models_child.py")
# Enough for LiteRT with a 3 MB model many times over; far below the machine.
MEMORY_LIMIT = 4 << 30


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_fuzz(tmp_path: Path, seed: int, count: int, budget: float) -> dict:
    """Run the child on both models; fail with the mutant that crashed it, if one did."""
    last = tmp_path / "last-mutant.tflite"
    completed = subprocess.run(
        [
            sys.executable,
            str(CHILD),
            "--seed",
            str(seed),
            "--count",
            str(count),
            "--budget",
            str(budget),
            "--last",
            str(last),
            str(CPU_EXTRACTOR),
            str(MOBILENET_V1_SMALL),
        ],
        capture_output=True,
        text=True,
        timeout=4 * budget + 120,
        preexec_fn=_limit_memory,
    )
    if completed.returncode < 0 or completed.returncode > 1:
        described = last.with_suffix(".txt")
        mutant = described.read_text().strip() if described.exists() else "(before the first)"
        name = (
            signal.Signals(-completed.returncode).name
            if completed.returncode < 0
            else f"exit {completed.returncode}"
        )
        pytest.fail(
            f"the fuzz child crashed ({name}) on mutant {mutant}; bytes kept in {last}\n"
            f"{completed.stderr[-3000:]}"
        )
    return json.loads(completed.stdout)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is Linux-only here")
def test_mutated_models_fail_cleanly(tmp_path) -> None:
    # ~200 mutants in all; each model gets at most 60 s so a slow machine stays bounded.
    report = run_fuzz(tmp_path, seed=20261121, count=100, budget=60.0)
    unclean = report.pop("unclean")
    assert not unclean, json.dumps(unclean, indent=1)
    for name, result in report.items():
        outcomes = result["outcomes"]
        assert result["mutants"] >= 20, f"{name}: only {result['mutants']} mutants in time"
        # The fuzz must actually reach both sides: refused mutants and loadable ones.
        assert outcomes.get("load_interpreter: ValueError", 0) > 0, (name, outcomes)
        assert outcomes.get("load_interpreter: ok", 0) > 0, (name, outcomes)


def test_the_oom_mutant_is_refused_before_the_interpreter(cpu_extractor_path) -> None:
    """The mutant the fuzz found: one flipped bit made the input [1, 224, 2097376, 3].

    LiteRT allocated ~24 GB for it before the kernel killed the process; the
    structure check must refuse it without allocating anything.
    """
    from kiosk.learn.tflite_head import inspect_extractor
    from kiosk.vision import runtime

    content = bytearray(cpu_extractor_path.read_bytes())
    width_offset = _input_width_offset(bytes(content))
    assert int.from_bytes(content[width_offset : width_offset + 4], "little") == 224
    content[width_offset : width_offset + 4] = (2097376).to_bytes(4, "little")
    mutant = bytes(content)
    assert inspect_extractor(mutant).input_shape == (1, 224, 2097376, 3)
    with pytest.raises(ValueError, match=r"could not be loaded.*corrupt.*MiB"):
        runtime.load_interpreter(mutant, num_threads=1)


def _input_width_offset(model: bytes) -> int:
    """Byte offset of the input tensor's width (shape[2]) in the file."""
    from ai_edge_litert import schema_py_generated as schema

    root = schema.Model.GetRootAs(model, 0)
    subgraph = root.Subgraphs(0)
    tensor = subgraph.Tensors(subgraph.Inputs(0))
    tab = tensor._tab
    return tab.Vector(tab.Offset(4)) + 2 * 4
