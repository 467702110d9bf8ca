"""Reading trust material from files and writing it atomically, keys never world-readable.

A key file is created under a temporary name with mode 0600 from the first
byte (os.open with O_EXCL, so no umask or pre-existing file can widen it), then
linked or renamed into place, so a reader sees either no file or the whole one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from isthmus.identity.errors import TrustMaterialError

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
MAX_FILE_BYTES = 1024 * 1024  # a PEM bundle of many anchors is a few KiB; anything huge is a wrong path


def read_file(path: Path, what: str) -> bytes:
    """The bytes of a trust-material file, or a TrustMaterialError naming the file and the OS problem."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise TrustMaterialError(str(path), f"{what} file does not exist; check the path") from None
    except IsADirectoryError:
        raise TrustMaterialError(str(path), f"is a directory, expected a {what} file") from None
    except PermissionError:
        raise TrustMaterialError(str(path), f"cannot read the {what} file: permission denied") from None
    except OSError as e:
        raise TrustMaterialError(str(path), f"cannot read the {what} file: {e.strerror or e}") from None
    if len(data) > MAX_FILE_BYTES:
        raise TrustMaterialError(str(path), f"is larger than {MAX_FILE_BYTES} bytes; this is not a {what} file")
    return data


def write_file(path: Path, data: bytes, *, private: bool, overwrite: bool = False) -> None:
    """Write `data` to `path` atomically: mode 0600 if private, else 0644.

    Without `overwrite`, an existing file is an error, so that creating an anchor
    never silently destroys the old one (every certificate in the mesh chains to it).
    """
    mode = PRIVATE_MODE if private else PUBLIC_MODE
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as e:
        raise TrustMaterialError(str(path), f"cannot create the file: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # the umask may have narrowed a public file; make it exactly `mode`
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if `path` exists: atomic create-if-absent
            except FileExistsError:
                raise TrustMaterialError(
                    str(path), "already exists; refusing to overwrite it (remove it or choose another path)"
                ) from None
        _sync_directory(path.parent)
    except OSError as e:
        raise TrustMaterialError(str(path), f"cannot write the file: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _sync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
