"""TLS and basic auth for the metrics endpoint, from a web config file in the format
of the Prometheus exporter-toolkit (`--web.config.file`), so the file an operator
already writes for node_exporter works here unchanged:

    tls_server_config:
      cert_file: /etc/edge-speaker/tls/metrics.crt
      key_file: /etc/edge-speaker/tls/metrics.key
      client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
      client_ca_file: /etc/edge-speaker/tls/ca.crt
      min_version: TLS12                             # TLS12 (default) or TLS13
    basic_auth_users:
      prometheus: $2y$10$...                          # bcrypt hashes (htpasswd -nBC 10 "")

Supported: cert_file/key_file, client_auth_type (NoClientCert, RequestClientCert,
RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert),
client_ca_file, min_version, max_version, basic_auth_users. Anything else (cipher
suites, curve preferences, http_server_config) is refused by name rather than
silently ignored. As with the exporter-toolkit the file is read again when it
changes (checked on each connection by its mtime): certificates rotate without a
reload. A file that becomes invalid keeps the last good settings and is logged.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 64 * 1024
CLIENT_AUTH = {
    "NoClientCert": (ssl.CERT_NONE, False),
    "RequestClientCert": (ssl.CERT_OPTIONAL, False),
    "RequireAnyClientCert": (ssl.CERT_REQUIRED, False),
    "VerifyClientCertIfGiven": (ssl.CERT_OPTIONAL, True),
    "RequireAndVerifyClientCert": (ssl.CERT_REQUIRED, True),
}
VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
            "max_version"}


class WebConfigError(ValueError):
    """The web config file is unreadable or invalid; the message names the key."""


@dataclass(frozen=True, slots=True)
class WebConfig:
    """What the endpoint enforces."""

    tls: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    """User name -> bcrypt hash."""


def _mapping(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise WebConfigError(f"{where}: expected a mapping")
    return value


def _file(base: Path, value: object, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise WebConfigError(f"{where}: expected a file path")
    path = Path(value) if Path(value).is_absolute() else base / value
    if not path.is_file():
        raise WebConfigError(f"{where}: {path} is not a readable file")
    return path


def _tls(base: Path, spec: dict[str, Any]) -> ssl.SSLContext:
    unknown = sorted(set(spec) - TLS_KEYS)
    if unknown:
        raise WebConfigError(f"tls_server_config.{unknown[0]}: not supported here")
    if "cert_file" not in spec or "key_file" not in spec:
        raise WebConfigError("tls_server_config: needs cert_file and key_file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert = _file(base, spec["cert_file"], "tls_server_config.cert_file")
    key = _file(base, spec["key_file"], "tls_server_config.key_file")
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise WebConfigError(f"tls_server_config.cert_file/key_file: {exc}") from None
    for name in ("min_version", "max_version"):
        if name in spec:
            if spec[name] not in VERSIONS:
                raise WebConfigError(f"tls_server_config.{name}: one of "
                                     f"{', '.join(VERSIONS)}")
            setattr(ctx, name, VERSIONS[spec[name]])
    if "min_version" not in spec:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    auth = spec.get("client_auth_type", "NoClientCert")
    if auth not in CLIENT_AUTH:
        raise WebConfigError(f"tls_server_config.client_auth_type: one of "
                             f"{', '.join(CLIENT_AUTH)}")
    mode, verify = CLIENT_AUTH[auth]
    if verify or "client_ca_file" in spec:
        if "client_ca_file" not in spec:
            raise WebConfigError(f"tls_server_config.client_ca_file: {auth} needs it")
        ca = _file(base, spec["client_ca_file"], "tls_server_config.client_ca_file")
        try:
            ctx.load_verify_locations(cafile=str(ca))
        except (ssl.SSLError, OSError) as exc:
            raise WebConfigError(f"tls_server_config.client_ca_file: {exc}") from None
    elif mode != ssl.CERT_NONE:
        # Python cannot accept a client certificate without verifying it against a CA
        raise WebConfigError(f"tls_server_config.client_auth_type: {auth} without "
                             "verification is not supported; use VerifyClientCertIfGiven "
                             "or RequireAndVerifyClientCert with client_ca_file")
    ctx.verify_mode = mode
    return ctx


def _users(spec: dict[str, Any]) -> dict[str, bytes]:
    users = {}
    for name, hashed in spec.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise WebConfigError(f"basic_auth_users.{name}: expected a bcrypt hash "
                                 "($2y$..., e.g. from `htpasswd -nBC 10 USER`)")
        users[name] = hashed.encode()
    return users


def load_web_config(path: Path) -> WebConfig:
    """Read and check a web config file; WebConfigError names what is wrong."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise WebConfigError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise WebConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{path}: not valid YAML ({exc})") from None
    doc = _mapping(doc, str(path))
    unknown = sorted(set(doc) - {"tls_server_config", "basic_auth_users"})
    if unknown:
        raise WebConfigError(f"{unknown[0]}: not supported here")
    base = path.parent
    tls_spec = _mapping(doc.get("tls_server_config"), "tls_server_config")
    return WebConfig(tls=_tls(base, tls_spec) if tls_spec else None,
                     users=_users(_mapping(doc.get("basic_auth_users"), "basic_auth_users")))


class WebConfigWatcher:
    """The current settings of one file, re-read when its mtime or size changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = self._stat()
        self.current = load_web_config(path)  # invalid at start: the daemon refuses
        self.error = ""

    def _stat(self) -> tuple[int, int]:
        try:
            st = os.stat(self.path)
        except OSError:
            return (0, 0)
        return (st.st_mtime_ns, st.st_size)

    def refresh(self) -> tuple[WebConfig, str | None]:
        """The settings to use now, and an error if a changed file was refused."""
        stamp = self._stat()
        if stamp == self._stamp:
            return self.current, None
        self._stamp = stamp
        try:
            self.current = load_web_config(self.path)
        except WebConfigError as exc:
            self.error = str(exc)
            return self.current, self.error
        self.error = ""
        return self.current, None
