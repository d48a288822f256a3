"""Where a source's rows are on disk: its file, directory or glob, plus pushed part files.

Only the standard library: the offline engine reads what these functions find, and ``apply``
uses them to check sources without importing DuckDB.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Protocol

from pitstop.definitions.sources import FileSource
from pitstop.errors import DataSourceError

__all__ = [
    "GLOB_CHARS",
    "PUSHED_SUFFIX",
    "Located",
    "has_data",
    "pushed_folder",
    "resolve_main",
    "resolve_path",
]

GLOB_CHARS = frozenset("*?[")
PUSHED_SUFFIX = ".pushed"


class Located(Protocol):
    """Where a source's rows are (``offline.pit.SourceRef`` is one)."""

    @property
    def path(self) -> str: ...  # absolute: a file, a directory, a glob or a URL
    @property
    def file_format(self) -> str: ...
    @property
    def pushed(self) -> str | None: ...  # folder of pushed Parquet part files
    @property
    def display_name(self) -> str: ...


def pushed_folder(source: FileSource, repo_path: Path) -> Path:
    """Where offline pushes to ``source`` go: the folder itself, or ``<file>.pushed/``."""
    path = Path(source.resolve_path(repo_path))
    return path if path.is_dir() else path.with_name(path.name + PUSHED_SUFFIX)


def has_data(path: str, pushed: str | None) -> bool:
    """Whether a source has any offline data: its file (or glob), or pushed part files. A
    push-fed source has none until the first offline push."""
    if os.path.exists(path) or glob.has_magic(path):
        return True
    return bool(pushed and glob.glob(os.path.join(pushed, "*.parquet")))


def resolve_path(source: Located) -> tuple[str | list[str], bool]:
    """Check the source's data exists; return what to read and whether it spans many files."""
    pushed = source.pushed
    parts = glob.glob(os.path.join(pushed, "*.parquet")) if pushed else []
    if not parts:
        return resolve_main(source)
    pattern = os.path.join(pushed or "", "*.parquet")
    if not os.path.exists(source.path) and not (GLOB_CHARS & set(source.path)):
        return pattern, True
    main, _ = resolve_main(source)
    return [*([main] if isinstance(main, str) else main), pattern], True


def resolve_main(source: Located) -> tuple[str, bool]:
    """Check ``source.path`` exists; return the path to read and whether it spans many files."""
    path = source.path
    if "://" in path:
        return path, bool(GLOB_CHARS & set(path))
    if GLOB_CHARS & set(path):
        if not glob.glob(path, recursive=True):
            raise DataSourceError(
                f"No files match {path!r} (source {source.display_name!r}); check the path."
            )
        return path, True
    if os.path.isdir(path):
        suffix = "csv" if source.file_format == "csv" else "parquet"
        pattern = os.path.join(path, "**", f"*.{suffix}")
        if not glob.glob(pattern, recursive=True):
            raise DataSourceError(
                f"Directory {path!r} of source {source.display_name!r} holds no *.{suffix} files."
            )
        return pattern, True
    if not os.path.exists(path):
        raise DataSourceError(
            f"Source {source.display_name!r} points to {path!r}, which does not exist; fix the "
            "source's path or create the file."
        )
    return path, False
