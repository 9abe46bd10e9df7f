"""Evidence files, stored by content under the data folder.

A file's path is derived from its SHA-256, so storing the same bytes twice
keeps one copy, and a stored file cannot be overwritten with other content.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def store_file(files_dir: Path, data: bytes) -> tuple[str, Path]:
    """Write ``data`` (atomically) and return its SHA-256 hex digest and path."""
    digest = hashlib.sha256(data).hexdigest()
    path = files_dir / digest[:2] / digest
    if path.exists():
        return digest, path
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
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
