"""Secrets in the config: keys read from files, and redaction for display.

A `password_file` keeps a TCP-MD5 key out of the YAML (which operators paste into
tickets and keep in git). It is read at every load (start, reload, check), with the
same care as the config file itself: a regular file, small, opened non-blocking,
not readable by others.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from speaker.config.types import reject_control_chars

MAX_SECRET_BYTES = 1024
"""Largest password file read."""
SECRET_KEYS = frozenset({"password", "secret"})
"""Keys whose values `speaker config show` redacts, at any depth."""
REDACTED = "<redacted>"


def read_password_file(raw: Any) -> str:
    """The key in a password file: its first line, without the trailing newline."""
    return read_secret_file(raw, "password_file")


def read_secret_file(raw: Any, field: str, private: bool = True) -> str:
    """The one-line secret in the file `raw` names (`field` names the config field).

    Never blocks: the type is checked before opening (a FIFO is refused) and the file
    is opened non-blocking. `private` refuses a file readable by others."""
    if not isinstance(raw, str | Path):
        raise ValueError(f"{field} must be a path")
    text = str(raw)
    reject_control_chars(text)
    path = Path(text)
    if not path.is_absolute():
        raise ValueError(f"{field} {text!r} must be an absolute path")
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{field} {text} is not a regular file")
        if private and info.st_mode & stat.S_IROTH:
            raise ValueError(f"{field} {text} is readable by others (mode "
                             f"{stat.S_IMODE(info.st_mode):04o}); chmod o-r it")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            data = os.read(fd, MAX_SECRET_BYTES + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ValueError(f"{field} {text}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise ValueError(f"{field} {text} is larger than {MAX_SECRET_BYTES} bytes")
    try:
        key = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{field} {text} is not UTF-8 text") from None
    key = key.removesuffix("\n").removesuffix("\r")
    if "\n" in key:
        raise ValueError(f"{field} {text} holds more than one line")
    return key


def redact(data: Any) -> Any:
    """A copy of dumped config data with every secret value replaced by REDACTED."""
    if isinstance(data, dict):
        return {k: (REDACTED if k in SECRET_KEYS and v is not None else redact(v))
                for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data
