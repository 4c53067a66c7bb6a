"""DICOM nodes (PACS, research archives) the lab talks to: `config_dir()/nodes.json`.

The file is `{"nodes": [{"name": "pacs", "ae_title": "PACS", "host": "10.0.0.5", "port": 104, ...}]}`.
Besides the peer's address a node names our own AE title, how studies are fetched from it
(`get`, or `move` to our own temporary Storage SCP on `listen_port`, which the PACS must know as
our AE title), optional TLS files and a timeout. Nothing here is secret except a TLS key, which
stays in its own file; the node file itself is written 0600 anyway.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from tui.core.config import config_dir, write_private
from tui.core.errors import MrishareError

DEFAULT_OUR_AE = "MRISHARE"
RETRIEVE_METHODS = ("get", "move")


@dataclass(frozen=True)
class DicomNode:
    """One peer AE and how we talk to it."""

    name: str
    """Short label used by `--node` and in messages (never a patient value)."""
    ae_title: str
    """The peer's AE title (called AE)."""
    host: str
    port: int
    our_ae_title: str = DEFAULT_OUR_AE
    """Our AE title (calling AE; also the C-MOVE destination the PACS must know)."""
    retrieve: str = "get"
    """`get` (C-GET on one association) or `move` (C-MOVE to our Storage SCP on `listen_port`)."""
    listen_port: int | None = None
    """Port of our temporary Storage SCP for C-MOVE."""
    listen_host: str = ""
    """Address that SCP binds to ("" = all interfaces)."""
    tls_cert: Path | None = None
    """Our client certificate (PEM), for nodes that want mutual TLS."""
    tls_key: Path | None = None
    tls_ca: Path | None = None
    """CA bundle that signed the node's certificate; setting any TLS file turns TLS on."""
    timeout_s: float = 30.0
    """Seconds to wait for a connection, an association answer or a DIMSE response."""

    def __post_init__(self) -> None:
        check_ae_title(self.ae_title, self.name)
        check_ae_title(self.our_ae_title, self.name)
        if not self.name.strip() or not self.host.strip():
            raise MrishareError("a node needs a name and a host", self.name or None)
        for port in (self.port, self.listen_port):
            if port is not None and not (isinstance(port, int) and 0 < port < 65536):
                raise MrishareError("port must be a number from 1 to 65535", self.name)
        if self.retrieve not in RETRIEVE_METHODS:
            raise MrishareError("retrieve must be 'get' or 'move'", self.name)
        if self.retrieve == "move" and self.listen_port is None:
            raise MrishareError("retrieve 'move' needs listen_port (where the PACS sends the images)", self.name)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise MrishareError("TLS needs both tls_cert and tls_key, or neither", self.name)
        if not self.timeout_s > 0:
            raise MrishareError("timeout_s must be positive", self.name)

    @property
    def uses_tls(self) -> bool:
        """True if any TLS file is set."""
        return any(p is not None for p in (self.tls_cert, self.tls_key, self.tls_ca))

    @property
    def label(self) -> str:
        """`name (AE@host:port)` for messages."""
        return f"{self.name} ({self.ae_title}@{self.host}:{self.port})"

    def client_tls(self) -> ssl.SSLContext | None:
        """A verifying client context (the node's certificate must match `host`), or None without TLS."""
        if not self.uses_tls:
            return None
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=_opt(self.tls_ca))
            if self.tls_cert is not None:
                context.load_cert_chain(str(self.tls_cert), _opt(self.tls_key))
        except (OSError, ssl.SSLError) as exc:
            raise MrishareError(f"cannot load TLS files ({exc.strerror or exc})", self.name) from None
        return context

    def server_tls(self) -> ssl.SSLContext | None:
        """Context for our C-MOVE Storage SCP (our certificate; clients checked against `tls_ca`)."""
        if self.tls_cert is None:
            return None
        try:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=_opt(self.tls_ca))
            context.load_cert_chain(str(self.tls_cert), _opt(self.tls_key))
        except (OSError, ssl.SSLError) as exc:
            raise MrishareError(f"cannot load TLS files ({exc.strerror or exc})", self.name) from None
        if self.tls_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def _opt(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def check_ae_title(title: str, where: str | None = None) -> str:
    """PS3.5 AE VR: 1-16 characters, no backslash or control characters, not only spaces."""
    if not isinstance(title, str) or not title.strip() or len(title) > 16 \
            or any(c == "\\" or not c.isprintable() or not c.isascii() for c in title):
        raise MrishareError("an AE title has 1 to 16 printable ASCII characters and no backslash", where)
    return title


def nodes_path() -> Path:
    """`config_dir()/nodes.json`."""
    return config_dir() / "nodes.json"


_PATH_FIELDS = ("tls_cert", "tls_key", "tls_ca")
_FIELDS = {f.name for f in fields(DicomNode)}


def node_from_dict(raw: dict[str, Any], where: Path | str | None = None) -> DicomNode:
    """Validate one node entry (unknown keys are refused so typos do not pass silently)."""
    if not isinstance(raw, dict):
        raise MrishareError("each node must be an object", where)
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise MrishareError(f"unknown node field(s): {', '.join(unknown)}", where)
    missing = sorted({"name", "ae_title", "host", "port"} - set(raw))
    if missing:
        raise MrishareError(f"node lacks {', '.join(missing)}", where)
    values = dict(raw)
    for key in _PATH_FIELDS:
        if values.get(key):
            values[key] = Path(values[key]).expanduser()
        else:
            values[key] = None
    try:
        return DicomNode(**values)
    except TypeError:
        raise MrishareError("a node field has the wrong type", where) from None


def load_nodes(path: Path | None = None) -> dict[str, DicomNode]:
    """All configured nodes by name (empty if there is no file)."""
    path = path or nodes_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MrishareError(f"cannot read node list ({type(exc).__name__})", path) from None
    entries = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise MrishareError('expected {"nodes": [...]}', path)
    nodes: dict[str, DicomNode] = {}
    for raw in entries:
        node = node_from_dict(raw, path)
        if node.name in nodes:
            raise MrishareError(f"node name {node.name!r} appears twice", path)
        nodes[node.name] = node
    return nodes


def save_nodes(nodes: dict[str, DicomNode] | list[DicomNode], path: Path | None = None) -> Path:
    """Write the node list atomically (0600)."""
    path = path or nodes_path()
    items = nodes.values() if isinstance(nodes, dict) else nodes
    rows = []
    for node in items:
        row = asdict(node)
        for key in _PATH_FIELDS:
            row[key] = str(row[key]) if row[key] is not None else None
        rows.append({k: v for k, v in row.items() if v is not None})
    write_private(path, (json.dumps({"nodes": rows}, indent=2) + "\n").encode())
    return path


def get_node(name: str, path: Path | None = None) -> DicomNode:
    """The node called `name`, or an error listing the known names."""
    nodes = load_nodes(path)
    if name not in nodes:
        known = ", ".join(sorted(nodes)) or "none configured"
        raise MrishareError(f"no DICOM node {name!r} (known: {known})", path or nodes_path())
    return nodes[name]


def with_overrides(node: DicomNode, **changes: Any) -> DicomNode:
    """A copy of `node` with the non-None `changes` applied (CLI flags over the config)."""
    return replace(node, **{k: v for k, v in changes.items() if v is not None})
