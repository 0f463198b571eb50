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


class SetTrial(NamedTuple):
    """A trial against an enrollment set: ``label enroll_id probe`` (1 = the probe is that speaker)."""

    label: int
    enroll_id: str
    probe: str


def read_enrollment_sets(path: Path | str) -> dict[str, list[str]]:
    """Read enrollment sets: one ``<enroll_id> <path> [<path> ...]`` per line.

    Raises
    ------
    ValueError
        A line without a path, an id given twice, or no sets.
    """
    sets: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) < 2:
                raise ValueError(f"{path}, line {lineno}: expected '<enroll_id> <path> [<path> ...]'")
            if fields[0] in sets:
                raise ValueError(f"{path}, line {lineno}: enrollment id {fields[0]!r} given twice")
            sets[fields[0]] = fields[1:]
    if not sets:
        raise ValueError(f"{path}: no enrollment sets")
    return sets


def read_set_trials(path: Path | str) -> list[SetTrial]:
    """Read trials against enrollment sets: ``<0|1> <enroll_id> <probe_path>`` per line."""
    trials = []
    for lineno, fields in _read_rows(path, "<0|1> <enroll_id> <probe_path>"):
        if fields[0] not in ("0", "1"):
            raise ValueError(f"{path}, line {lineno}: label must be 0 or 1, got {fields[0]!r}")
        trials.append(SetTrial(int(fields[0]), fields[1], fields[2]))
    if not trials:
        raise ValueError(f"{path}: no trials")
    return trials


def read_identification_list(path: Path | str) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """Read an identification list of ``enroll <speaker> <path>`` and ``probe <speaker> <path>`` lines.

    Returns ``(enrolled, probes)``: each enrolled speaker's files in order, and ``(speaker, path)``
    probes; a probe whose speaker has no ``enroll`` line is an unknown voice.
    """
    enrolled: dict[str, list[str]] = {}
    probes: list[tuple[str, str]] = []
    for lineno, fields in _read_rows(path, "<enroll|probe> <speaker> <path>"):
        if fields[0] == "enroll":
            enrolled.setdefault(fields[1], []).append(fields[2])
        elif fields[0] == "probe":
            probes.append((fields[1], fields[2]))
        else:
            raise ValueError(f"{path}, line {lineno}: the first field must be enroll or probe, got {fields[0]!r}")
    if not enrolled or not probes:
        raise ValueError(f"{path}: needs enroll and probe lines")
    return enrolled, probes
