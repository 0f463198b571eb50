"""Trial lists (verification) and speaker lists (identification): the two input formats."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple


class Trial(NamedTuple):
    """One line of a VoxCeleb-style trial list: ``label a b`` (1 = same speaker)."""

    label: int
    a: str
    b: str


# --------------------------------------------------------------------------- trial lists


def read_trials(path: Path | str) -> list[Trial]:
    """Read a VoxCeleb-style trial list.

    Each non-blank line is ``<label> <path_a> <path_b>`` with label ``1`` (target, same
    speaker) or ``0`` (non-target); paths are relative to an audio root. Lines starting with
    ``#`` are comments.

    Raises
    ------
    ValueError
        A line with another number of fields or another label (the message gives the line
        number), or a list with no trials.
    """
    trials: list[Trial] = []
    for lineno, fields in _read_rows(path, "<0|1> <path_a> <path_b>"):
        if fields[0] not in ("0", "1"):
            raise ValueError(f"{path}, line {lineno}: label must be 0 or 1, got {fields[0]!r}")
        trials.append(Trial(int(fields[0]), fields[1], fields[2]))
    if not trials:
        raise ValueError(f"{path}: no trials")
    return trials


def _read_rows(path: Path | str, usage: str) -> list[tuple[int, list[str]]]:
    """``(line number, fields)`` of a whitespace-separated list with ``len(usage.split())`` fields a line.

    Blank lines and lines starting with ``#`` are skipped; any other line with another number of
    fields raises ValueError naming the line.
    """
    width = len(usage.split())
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.split()
            if len(fields) != width:
                raise ValueError(f"{path}, line {lineno}: expected '{usage}', got {len(fields)} fields: {text!r}")
            rows.append((lineno, fields))
    return rows


def read_speaker_list(path: Path | str) -> list[tuple[str, str]]:
    """Read an identification list: one ``<speaker> <path>`` per line, in the order given.

    Paths are relative to an audio root; :func:`evaluate_identification` enrolls each speaker
    with their first utterances in this order. Blank lines and lines starting with ``#`` are
    skipped.

    Raises
    ------
    ValueError
        A line with another number of fields (the message gives the line number), or no lines.
    """
    utterances = [(fields[0], fields[1]) for _, fields in _read_rows(path, "<speaker> <path>")]
    if not utterances:
        raise ValueError(f"{path}: no utterances")
    return utterances
