"""Where uploads go and with which login: `credentials.json`, found in one explicit place.

The file keeps the seed's fields (`username`, `password`, `remote_path`, `expiration_days`,
`include_mricron`, `nextcloud_baseurl`) and adds `destination`, `share_password`, `chunk_mib`,
`single_put_mib`, `include_viewer`, `ca_bundle` and `timeout_s`. The seed's `include_mricron: true` now means
`include_viewer: true` (the browser viewer replaced the Windows-only MRIcron bundle); a `viewer_bundle` is accepted
and ignored, with a one-line note, for the same reason. It is looked up
in this order: `--credentials PATH`, the `MRISHARE_CREDENTIALS` environment variable,
`config_dir()/credentials.json`. Nothing is ever
read from a `.env` file or from nc-py-api's `NEXTCLOUD_URL`/`NC_AUTH_*` variables, so the source of a
login is always one file the operator can name. A file readable by group/others is refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tui.core.config import check_private, config_dir
from tui.core.errors import MrishareError

ENV_VAR = "MRISHARE_CREDENTIALS"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class Credentials:
    """Validated settings for one destination; secrets are kept out of `repr`."""

    source: Path
    """The file these came from (shown in messages, never its content)."""
    destination: str = "folder"
    """`nextcloud`, or `folder:PATH` for a local directory such as a USB stick."""
    nextcloud_baseurl: str = ""
    """`https://cloud.example.org` (plain http only for 127.0.0.1/localhost)."""
    username: str = ""
    password: str = field(default="", repr=False)
    """Use a Nextcloud app password (Settings > Security), never the login password."""
    remote_path: str = "mrishare"
    """mrishare's own folder on Nextcloud; clean-up only ever deletes below it."""
    expiration_days: int = 14
    """Full days a participant can use the link."""
    include_viewer: bool = True
    """Put the offline 3D browser viewer (NiiVue) into each package's index.html."""
    share_password: bool = False
    """Protect every link with a generated share password (always on in zipcrypto mode)."""
    chunk_mib: int = 100
    """Chunk size of a chunked upload: at most the largest request the server (or its proxy) takes."""
    single_put_mib: int = 512
    """Files up to this size go in one PUT, which the server writes once (chunks are written twice: about twice
    as fast); larger ones go in chunks that resume after an interruption. 512 is the request limit Nextcloud's
    nginx example sets; a server that refuses (413) gets chunks anyway. 0: always chunks."""
    ca_bundle: Path | None = None
    """PEM file of a lab CA for a self-signed server; TLS is verified either way."""
    timeout_s: float = 120.0
    """Seconds without an answer before a request counts as failed."""
    processing_path: str = "mrishare-processing"
    """The processing folder on Nextcloud (inbox/, running/, outbox/) for `processing:PIPELINE` and the worker."""
    webhook_url: str = ""
    """Where a submitted processing job's job.json is POSTed to start it (empty: a polling worker starts it)."""
    webhook_token: str = field(default="", repr=False)
    """The webhook's bearer token."""
    notes: tuple[str, ...] = ()
    """One-line remarks about the file for the operator (e.g. a seed option that changed meaning)."""


_INT_LIMITS = {"expiration_days": (1, 3650), "chunk_mib": (5, 4096), "single_put_mib": (0, 16384)}
_OBSOLETE = {"include_mricron", "viewer_bundle"}
"""Fields of earlier files that are accepted and read only to tell the operator what became of them."""
_FIELDS = {name for name in Credentials.__dataclass_fields__ if name not in ("source", "notes")} | _OBSOLETE
MRICRON_NOTE = "include_mricron is now include_viewer: every package gets the offline 3D browser viewer"
VIEWER_BUNDLE_NOTE = ("viewer_bundle is obsolete and ignored: every package carries the offline 3D browser viewer "
                      "(include_viewer), nothing to install")


def credentials_path(explicit: Path | None = None) -> Path:
    """The credentials file to use: `--credentials`, then $MRISHARE_CREDENTIALS, then the config dir."""
    if explicit is not None:
        return Path(explicit).expanduser()
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return Path(from_env).expanduser()
    return config_dir() / "credentials.json"


def load_credentials(explicit: Path | None = None) -> Credentials:
    """Read and validate the credentials file (see `credentials_path` for where it is looked up)."""
    path = credentials_path(explicit)
    if not path.is_file():
        raise MrishareError(
            f"no credentials file; copy credentials.example.json there (or pass --credentials / set {ENV_VAR})",
            path,
        )
    check_private(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MrishareError(f"not readable as JSON ({type(exc).__name__})", path) from None
    if not isinstance(raw, dict):
        raise MrishareError("must hold one JSON object", path)
    return parse_credentials(raw, path)


def parse_credentials(raw: dict[str, Any], source: Path) -> Credentials:
    """Check types and values of a credentials mapping; keys starting with `_` are comments."""
    unknown = sorted(k for k in raw if k not in _FIELDS and not k.startswith("_"))
    if unknown:
        raise MrishareError(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_FIELDS))}", source)
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name.startswith("_"):
            continue
        values[name] = _coerce(name, value, source)
    notes = []
    if values.pop("include_mricron", False):  # the seed's viewer option: MRIcron is gone, the browser viewer is on
        values["include_viewer"] = True
        notes.append(MRICRON_NOTE)
    if values.pop("viewer_bundle", None):  # a bundled desktop viewer: the browser viewer took its place
        notes.append(VIEWER_BUNDLE_NOTE)
    values["notes"] = tuple(notes)
    # A seed file has no `destination`; its Nextcloud fields say where it meant to upload.
    values.setdefault("destination", "nextcloud" if values.get("nextcloud_baseurl") else "folder")
    creds = Credentials(source=source, **values)
    _check_destination(creds)
    _check_webhook(creds)
    return creds


def _coerce(name: str, value: Any, source: Path) -> Any:
    if name in ("viewer_bundle", "ca_bundle"):
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise MrishareError(f"{name} must be a path string", source)
        return Path(value).expanduser()
    default = False if name == "include_mricron" else Credentials.__dataclass_fields__[name].default
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise MrishareError(f"{name} must be true or false", source)
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise MrishareError(f"{name} must be a whole number", source)
        low, high = _INT_LIMITS[name]
        if not low <= value <= high:
            raise MrishareError(f"{name} must be between {low} and {high}", source)
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise MrishareError(f"{name} must be a positive number", source)
        return float(value)
    if not isinstance(value, str):
        raise MrishareError(f"{name} must be a string", source)
    return value.strip() if name != "password" else value


def _check_webhook(creds: Credentials) -> None:
    if not creds.webhook_url:
        return
    url = urlsplit(creds.webhook_url)
    if url.scheme != "https" and not (url.scheme == "http" and url.hostname in LOOPBACK):
        raise MrishareError("webhook_url must start with https:// (plain http only for localhost)", creds.source)
    if not creds.webhook_token:
        raise MrishareError("webhook_token is required with webhook_url", creds.source)


def _check_destination(creds: Credentials) -> None:
    src = creds.source
    if creds.destination.startswith("folder:") or creds.destination == "folder":
        return
    if creds.destination != "nextcloud":
        raise MrishareError("destination must be 'nextcloud' or 'folder:PATH'", src)
    for name in ("nextcloud_baseurl", "username", "password"):
        if not getattr(creds, name):
            raise MrishareError(f"{name} is required for the nextcloud destination", src)
    url = urlsplit(creds.nextcloud_baseurl)
    if url.scheme != "https" and not (url.scheme == "http" and url.hostname in LOOPBACK):
        raise MrishareError("nextcloud_baseurl must start with https:// (plain http only for localhost)", src)
    if not url.hostname or url.query or url.fragment:
        raise MrishareError("nextcloud_baseurl must look like https://cloud.example.org", src)
    if creds.ca_bundle is not None and not creds.ca_bundle.is_file():
        raise MrishareError("ca_bundle does not name a readable PEM file", src)
    for name in ("remote_path", "processing_path"):
        if ".." in getattr(creds, name).split("/"):
            raise MrishareError(f"{name} must not contain '..'", src)
