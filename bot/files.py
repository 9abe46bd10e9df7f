"""Evidence files, stored by content under the data folder.

A file's path is derived from its SHA-256, so storing the same bytes twice
keeps one copy, and a stored file cannot be overwritten with other content.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

INCOMING_PREFIX = ".incoming-"
"""Name prefix of a file still being written, before it is renamed to its digest."""
_DIGEST = re.compile(r"[0-9a-f]{64}")


def store_file(files_dir: Path, data: bytes) -> tuple[str, Path]:
    """Write ``data`` (atomically) and return its SHA-256 hex digest and path."""
    digest = hashlib.sha256(data).hexdigest()
    path = files_dir / digest[:2] / digest
    if path.exists():
        try:
            # A new modification time marks the file as in use again for the orphan sweep.
            os.utime(path)
            return digest, path
        except FileNotFoundError:
            pass  # deleted meanwhile, so it is written again below
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=INCOMING_PREFIX)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return digest, path


def file_path(files_dir: Path, digest: str) -> Path:
    return files_dir / digest[:2] / digest


def delete_file(files_dir: Path, digest: str) -> None:
    file_path(files_dir, digest).unlink(missing_ok=True)


def stored_files(files_dir: Path) -> Iterator[tuple[str | None, Path]]:
    """Yield each stored file as (digest, path), and each unfinished write as (None, path)."""
    if not files_dir.is_dir():
        return
    for folder in sorted(files_dir.iterdir()):
        if not folder.is_dir() or len(folder.name) != 2:
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith(INCOMING_PREFIX):
                yield None, path
            elif _DIGEST.fullmatch(path.name) and path.name.startswith(folder.name):
                yield path.name, path
