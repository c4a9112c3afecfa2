"""Files the product writes on this machine's disk that hold company data (the SQLite warehouse with its
tokens, the token key file, reports and previews): created readable by their owner only.

Locations may be pathlib paths or Airflow's ObjectStoragePath; only the local file system has modes, so an
object store is left to its bucket's access rules.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Any

PRIVATE_FILE_MODE = 0o600
PRIVATE_FOLDER_MODE = 0o700
_LOCAL_PROTOCOLS = ("", "file", "local")


def local_path(location: Any) -> Path | None:
    """The file system path of a local location (pathlib, or an ObjectStoragePath of the local file system);
    None on an object store."""
    if isinstance(location, PurePath):
        return Path(location)
    if getattr(location, "protocol", None) in _LOCAL_PROTOCOLS:
        return Path(location.path)
    return None


def private_folder(folder: Any) -> None:
    """Create the folder (and its missing parents) readable by its owner only."""
    local = local_path(folder)
    if local is None:
        folder.mkdir(parents=True, exist_ok=True)
        return
    for missing in reversed([path for path in (local, *local.parents) if not path.exists()]):
        missing.mkdir(mode=PRIVATE_FOLDER_MODE, exist_ok=True)
    local.chmod(PRIVATE_FOLDER_MODE)


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, PRIVATE_FILE_MODE)


def open_private(location: Any, mode: str, **kwargs: Any) -> Any:
    """Open a file for writing, created readable by its owner only (one left by an earlier attempt is made
    so too)."""
    local = local_path(location)
    if local is None:
        return location.open(mode, **kwargs)
    handle = open(local, mode, opener=_private_opener, **kwargs)  # noqa: SIM115 (the caller closes it)
    local.chmod(PRIVATE_FILE_MODE)
    return handle


def create_private_file(path: Path) -> None:
    """Create `path` empty and 0600 unless it exists, and its folder 0700 unless that exists (an existing
    folder, such as the Airflow home, is left as it is)."""
    if path.exists():
        return
    if not path.parent.exists():
        private_folder(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
