"""labels.txt: pycoral's label-map format, written and read in one place.

One line per class, ``"<index> <name>"``, in the order of the model's output.
Whitespace runs in a name (a folder name may hold a line break) are folded to
one space when writing, so a file always parses back to the names it shows.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_labels", "parse_labels"]


def format_labels(names: Sequence[str]) -> str:
    """The labels file's text for class names in output order."""
    return "".join(f"{i} {' '.join(name.split())}\n" for i, name in enumerate(names))


def parse_labels(text: str) -> list[str]:
    """Class names in output order from a labels file's text (``format_labels``' format).

    Blank lines are skipped; indices may come in any order but each of 0..C-1 once.

    Raises:
        ValueError: a line is not "<index> <name>", or an index is repeated or missing.
    """
    names: dict[int, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2 or not (parts[0].isascii() and parts[0].isdigit()):
            raise ValueError(f"line {number} of the labels file is not '<index> <name>'")
        index = int(parts[0])
        if index in names:
            raise ValueError(f"the labels file names class {index} twice")
        names[index] = parts[1]
    if sorted(names) != list(range(len(names))):
        raise ValueError("the labels file skips a class number")
    return [names[i] for i in range(len(names))]
