"""Read files of fetched repository snapshots at a pinned commit.

A snapshot is a git directory (bare or not). Files are read with ``git cat-file`` at the
commit named in ``sources.csv``, so a snapshot that moved on still rebuilds the same corpus,
and one that lacks the commit fails loudly instead of silently reading other bytes.
"""
from __future__ import annotations

import subprocess
from pathlib import Path


class SnapshotError(RuntimeError):
    """A snapshot is missing, lacks a commit, or lacks a file at that commit."""


def git_dir(path: Path | str) -> Path:
    """The git directory of a snapshot given as a git dir or a work tree."""
    path = Path(path)
    if (path / ".git").is_dir():
        return path / ".git"
    if (path / "objects").is_dir() and (path / "HEAD").is_file():
        return path
    raise SnapshotError(f"{path} is not a git directory or a work tree with one")


def _git(gdir: Path, *args: str) -> bytes:
    proc = subprocess.run(["git", "--git-dir", str(gdir), *args], capture_output=True, check=False)
    if proc.returncode != 0:
        raise SnapshotError(f"git {' '.join(args)} in {gdir}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def head_commit(gdir: Path) -> str:
    """The commit a snapshot's HEAD points to (40 hex digits)."""
    return _git(gdir, "rev-parse", "HEAD").decode().strip()


def list_files(gdir: Path, commit: str, prefix: str = "") -> list[str]:
    """Paths of the files under ``prefix`` at ``commit``, sorted."""
    args = ["ls-tree", "-r", "--name-only", "-z", commit]
    if prefix:
        args.append(prefix)
    return sorted(p for p in _git(gdir, *args).decode().split("\0") if p)


def read_file(gdir: Path, commit: str, path: str) -> bytes:
    """The bytes of ``path`` at ``commit``.

    Raises
    ------
    SnapshotError
        The commit or the file is not in the snapshot (files of 4 MiB and more and Git LFS
        content are absent from fetched snapshots).
    """
    data = _git(gdir, "cat-file", "blob", f"{commit}:{path}")
    if data.startswith(b"version https://git-lfs.github.com/spec/"):
        raise SnapshotError(f"{path} at {commit} is a Git LFS pointer, not the file")
    return data
