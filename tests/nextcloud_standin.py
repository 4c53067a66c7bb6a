"""A stand-in Nextcloud 29 server for tests: stdlib HTTP on 127.0.0.1, answering like the recordings.

It reproduces what `../shared/data/nextcloud-29/` shows a real Nextcloud 29.0.6 sending: OCS v1/v2
envelopes (v1 reports 403/404 inside HTTP 200), capabilities, the current user with quota, WebDAV
PROPFIND/MKCOL/PUT/MOVE/DELETE with `OC-FileId`/`OC-ETag`, chunked upload v2 (uploads/ MKCOL with
`Destination`, chunk PUTs, MOVE of `.file`, 507 only at the MOVE), link shares with expiry, hashed
password, label and password-policy rejection, 401, 412 without `OCS-APIRequest`, 503 in maintenance,
and the participant's side: public WebDAV (`/public.php/webdav/`, `/public.php/dav/files/<token>/`)
with the share password, expired links answering 401, the share page's redirects (its HTML password
form with CSRF token and cookies is not modelled).
Files live on disk in a temporary folder, so large benchmark uploads do not fill memory.

Fault knobs (set attributes on the `StandinNextcloud` object while it runs):
  maintenance        every OCS/DAV answer is 503 (status.php still answers)
  fail_503           the next N requests get the maintenance 503
  reset_after_bytes  the next request whose body is longer drops the connection after that many bytes
  resets             how many such resets are left (default 1 once `reset_after_bytes` is set)
  delay_s            sleep this long before answering any request (timeouts)
  max_body           a proxy's request size limit (nginx client_max_body_size): a longer body gets 413 at
                     once, unread, and the connection is closed
  before_request     callable(method, path) run before each request (e.g. to shrink a quota mid-upload)
  enforce_password, max_expire_days   server-side share policy
  ignored_share_params   share-create parameters the server silently drops (an odd or old server)
  today              the server's date (shares expire at 00:00 of their expiry date)
`requests` records (method, path, query, headers) of every request.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape

INSTANCE_ID = "ocs8ztbab4e6"
WELCOME_BYTES = 164  # the skeleton welcome.txt every new user gets (f2 #1: used = 164)
COMMON_PASSWORDS = {"1234567890", "password123", "qwertyuiop", "abc", "password", "123456789012"}
DAV_ALLOW = "OPTIONS, GET, HEAD, DELETE, PROPFIND, PUT, PROPPATCH, COPY, MOVE, REPORT"
SHARES = "/apps/files_sharing/api/v1/shares"

CAPABILITIES: dict[str, Any] = {
    "version": {"major": 29, "minor": 0, "micro": 6, "string": "29.0.6", "edition": "", "extendedSupport": False},
    "capabilities": {
        "core": {"pollinterval": 60, "webdav-root": "remote.php/webdav", "mod-rewrite-working": False},
        "files": {"bigfilechunking": True, "blacklisted_files": [".htaccess"]},
        "dav": {"chunking": "1.0", "bulkupload": "1.0"},
        "files_sharing": {
            "api_enabled": True,
            "public": {"enabled": True, "password": {"enforced": False, "askForOptionalPassword": False},
                       "expire_date": {"enabled": False}, "multiple_links": True},
            "resharing": True,
            "default_permissions": 31,
        },
        "password_policy": {"minLength": 10, "enforceNonCommonPassword": True},
    },
}


@dataclass
class Share:
    """One link share as the server stores it."""

    id: int
    path: str  # "/MRI-Uploads/..." with a leading slash, as in the JSON
    file_id: int
    token: str
    expiration: date | None
    password_hash: str | None
    label: str
    uid: str = "uploader"
    permissions: int = 17  # a requested READ=1 reads back as READ|SHARE (e #1)
    stime: int = field(default_factory=lambda: int(time.time()))


@dataclass
class Recorded:
    """One request as the stand-in saw it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    elapsed_s: float = 0.0


class DropConnection(Exception):
    """Raised inside a handler to cut the TCP connection mid-request."""


class StandinNextcloud:
    """The server: users with passwords and quotas, files on disk, shares in memory."""

    def __init__(self, users: dict[str, str] | None = None, quotas: dict[str, int] | None = None,
                 storage: Path | None = None, tls: tuple[Path, Path] | None = None) -> None:
        """`tls` = (certificate, key) PEM files to serve https instead of http."""
        self.users = dict(users or {"uploader": "app-password-for-tests-0123456789"})
        self.quotas = dict(quotas or {})  # user -> bytes; missing = unlimited (quota -3)
        self._tmp = tempfile.TemporaryDirectory(prefix="nc-standin-", dir=storage)
        self.root = Path(self._tmp.name)
        self.lock = threading.RLock()
        self.file_ids: dict[Path, int] = {}
        self.next_file_id = 961
        self.shares: dict[int, Share] = {}
        self.next_share_id = 14
        self.requests: list[Recorded] = []
        self.maintenance = False
        self.fail_503 = 0
        self.reset_after_bytes: int | None = None
        self.resets = 1
        self.delay_s = 0.0
        self.max_body: int | None = None
        self.before_request: Callable[[str, str], None] | None = None
        self.enforce_password = False
        self.max_expire_days: int | None = None
        self.today: date | None = None
        self.ignored_share_params: set[str] = set()
        for user in self.users:
            home = self.files_root(user)
            home.mkdir(parents=True)
            (home / "welcome.txt").write_bytes(b"w" * WELCOME_BYTES)
            self.file_id(home)
            (self.root / user / "uploads").mkdir()
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.standin = self  # type: ignore[attr-defined]
        self.scheme = "https" if tls else "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` (https with `tls`)."""
        host, port = self.httpd.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def start(self) -> StandinNextcloud:
        """Serve in a daemon thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and delete the stored files."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
        self._tmp.cleanup()

    def __enter__(self) -> StandinNextcloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- storage ---------------------------------------------------------------------------------
    def files_root(self, user: str) -> Path:
        """The user's home folder on disk."""
        return self.root / user / "files"

    def uploads_root(self, user: str) -> Path:
        """The user's chunked-upload folders on disk."""
        return self.root / user / "uploads"

    def file_id(self, path: Path) -> int:
        """Stable numeric id of a node (assigned on first sight)."""
        with self.lock:
            if path not in self.file_ids:
                self.file_ids[path] = self.next_file_id
                self.next_file_id += 1
            return self.file_ids[path]

    def used(self, user: str) -> int:
        """Bytes in the user's files."""
        return sum(p.stat().st_size for p in self.files_root(user).rglob("*") if p.is_file())

    def free(self, user: str) -> int:
        """Bytes the user may still store."""
        if user in self.quotas:
            return max(self.quotas[user] - self.used(user), 0)
        return shutil.disk_usage(self.root).free

    def server_today(self) -> date:
        """The server's date (UTC, like the recorded instance) unless a test pins it."""
        return self.today or datetime.now(UTC).date()

    def share_expired(self, share: Share) -> bool:
        """A share is expired once its expiry midnight has passed (expiration <= now)."""
        return share.expiration is not None and share.expiration <= self.server_today()

    def remote_files(self, user: str) -> list[str]:
        """Paths of the user's files relative to the home folder (for test assertions)."""
        home = self.files_root(user)
        return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())

    def upload_folders(self, user: str) -> list[str]:
        """Names of chunked-upload folders still on the server."""
        return sorted(p.name for p in self.uploads_root(user).iterdir())


class _Server(ThreadingHTTPServer):
    """Quiet about clients that hang up (timeouts and resets are what the tests provoke)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, TimeoutError, ssl.SSLError)):
            super().handle_error(request, client_address)


def _etag(path: Path) -> str:
    st = path.stat()
    return '"' + hashlib.md5(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest() + '"'


def _sabre(exception: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<d:error xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns">\n'
        f"  <s:exception>{exception}</s:exception>\n  <s:message>{escape(message)}</s:message>\n</d:error>\n"
    ).encode()


def _fake_hash(password: str, salt: bytes | None = None) -> str:
    """A hash shaped like Nextcloud's argon2id one (scrypt inside: the stdlib has no argon2)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2, r=8, p=1)
    b64 = lambda b: base64.b64encode(b).decode().rstrip("=")  # noqa: E731
    return f"3|$argon2id$v=19$m=65536,t=4,p=1${b64(salt)}${b64(digest)}"


def _password_matches(password: str, stored: str) -> bool:
    salt = stored.split("$")[-2]
    return secrets.compare_digest(_fake_hash(password, base64.b64decode(salt + "=" * (-len(salt) % 4))), stored)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in separate writes; avoid 40 ms delayed-ACK stalls
    server_version = "Apache"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def nc(self) -> StandinNextcloud:
        return self.server.standin  # type: ignore[attr-defined]

    # -- plumbing --------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        nc = self.nc
        url = urlsplit(self.path)
        self.url_path, self.query = unquote(url.path), dict(parse_qsl(url.query, keep_blank_values=True))
        record = Recorded(self.command, url.path, url.query, {k.lower(): v for k, v in self.headers.items()})
        nc.requests.append(record)
        started = time.perf_counter()
        self.body_left = int(self.headers.get("Content-Length") or 0)
        try:
            if nc.before_request is not None:
                nc.before_request(self.command, self.url_path)
            if nc.delay_s:
                time.sleep(nc.delay_s)
            if nc.max_body is not None and self.body_left > nc.max_body:
                self.body_left, self.close_connection = 0, True  # refused on the headers alone, body unread
                return self._send(413, b"<html><body>413 Request Entity Too Large</body></html>",
                                  {"Content-Type": "text/html", "Connection": "close"})
            self._route()
            record.elapsed_s = time.perf_counter() - started
        except DropConnection:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.body_left:
            self._drain()

    do_GET = do_POST = do_PUT = do_DELETE = do_MKCOL = do_MOVE = do_PROPFIND = do_HEAD = _dispatch

    def _read_chunks(self):
        """Yield the request body in 1 MiB pieces, cutting the connection if a reset is due."""
        nc = self.nc
        cut = None
        with nc.lock:
            if nc.reset_after_bytes is not None and nc.resets > 0 and self.body_left > nc.reset_after_bytes:
                cut = nc.reset_after_bytes
                nc.resets -= 1
        done = 0
        while self.body_left:
            want = min(self.body_left, 1 << 20)
            if cut is not None:
                want = min(want, cut - done)
                if want == 0:
                    raise DropConnection
            piece = self.rfile.read(want)
            if not piece:
                raise DropConnection
            self.body_left -= len(piece)
            done += len(piece)
            yield piece

    def _drain(self) -> None:
        for _ in self._read_chunks():
            pass

    def _body(self) -> bytes:
        return b"".join(self._read_chunks())

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        if self.body_left:  # answer only after the whole request was read, like PHP does
            self._drain()
        self.send_response(status)
        self.send_header("X-Powered-By", "PHP/8.2.36")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return None
        expected = self.nc.users.get(user)
        return user if expected is not None and secrets.compare_digest(expected, password) else None

    def _route(self) -> None:
        nc, path = self.nc, self.url_path
        if path == "/status.php":
            body = {"installed": True, "maintenance": nc.maintenance, "needsDbUpgrade": False,
                    "version": "29.0.6.1", "versionstring": "29.0.6", "edition": "", "productname": "Nextcloud"}
            return self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json; charset=utf-8"})
        ocs = path.startswith(("/ocs/v1.php/", "/ocs/v2.php/"))
        with nc.lock:
            unavailable = nc.maintenance or nc.fail_503 > 0
            nc.fail_503 = max(nc.fail_503 - 1, 0)
        if unavailable:
            if ocs:
                body = {"ocs": {"meta": {"status": "failure", "statuscode": 503, "message": "Service unavailable"},
                                "data": []}}
                return self._send(503, json.dumps(body).encode(), {
                    "X-Nextcloud-Maintenance-Mode": "1", "Content-Type": "application/json; charset=utf-8"})
            return self._send(503,
                              _sabre("OCA\\DAV\\Exception\\ServerMaintenanceMode", "System is in maintenance mode."),
                              {"Content-Type": "application/xml; charset=utf-8"})
        user = self._user()
        if ocs:
            if user is None:
                body = (b'<?xml version="1.0"?>\n<ocs>\n <meta>\n  <status>failure</status>\n  <statuscode>997'
                        b"</statuscode>\n  <message>Unauthorised</message>\n </meta>\n <data/>\n</ocs>\n")
                return self._send(401, body, {"WWW-Authenticate": 'Basic realm="Authorisation Required"',
                                              "Content-type": "text/xml; charset=UTF-8"})
            if self.headers.get("OCS-APIRequest", "").lower() != "true":
                return self._send(412, b'{"message":"CSRF check failed"}',
                                  {"Content-Type": "application/json; charset=utf-8"})
            return _Ocs(self, user, v2=path.startswith("/ocs/v2.php/")).route(path[len("/ocs/v1.php"):])
        if path.startswith("/remote.php/dav/"):
            if user is None:
                message = ("No public access to this resource., Username or password was incorrect, No "
                           "'Authorization: Bearer' header found. Either the client didn't send one, or the server "
                           "is mis-configured, Username or password was incorrect")
                return self._send(401, _sabre("Sabre\\DAV\\Exception\\NotAuthenticated", message), {
                    "WWW-Authenticate": 'Basic realm="Nextcloud", charset="UTF-8"',
                    "Content-Type": "application/xml; charset=utf-8"})
            return _Dav(self, user).route(path[len("/remote.php/dav/"):])
        if path.startswith(("/public.php/", "/index.php/s/")):
            return _Public(self).route(path)
        return self._not_found_page()

    def _not_found_page(self) -> None:
        self._send(404, b"<!DOCTYPE html><html><body>Page not found</body></html>",
                   {"Content-type": "text/html; charset=UTF-8"})


class _Ocs:
    """OCS API: v1 puts failures inside HTTP 200, v2 mirrors them in the HTTP status."""

    def __init__(self, handler: _Handler, user: str, v2: bool) -> None:
        self.h, self.nc, self.user, self.v2 = handler, handler.nc, user, v2

    def reply(self, data: Any, code: int = 100, message: str = "OK", headers: dict[str, str] | None = None) -> None:
        ok = code == 100
        meta = {"status": "ok" if ok else "failure", "statuscode": (200 if self.v2 else 100) if ok else code,
                "message": message, "totalitems": "", "itemsperpage": ""}
        status = (200 if ok else code) if self.v2 else 200
        body = json.dumps({"ocs": {"meta": meta, "data": data}}).replace("/", "\\/").encode()
        self.h._send(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

    def params(self) -> dict[str, str]:
        params = dict(self.h.query)
        params.pop("format", None)
        raw = self.h._body()
        kind = self.h.headers.get("Content-Type", "")
        if raw and kind.startswith("application/json"):
            params.update({k: "" if v is None else str(v) for k, v in json.loads(raw).items()})
        elif raw:
            params.update(parse_qsl(raw.decode(), keep_blank_values=True))
        return params

    def route(self, path: str) -> None:
        method = self.h.command
        if path == "/cloud/capabilities" and method == "GET":
            etag = hashlib.md5(json.dumps(CAPABILITIES).encode()).hexdigest()
            return self.reply(CAPABILITIES, headers={"ETag": f'"{etag}"'})
        if path == "/cloud/user" and method == "GET":
            return self.reply(self.user_data(self.user))
        if path.startswith("/cloud/users/") and method == "GET":
            other = path.rsplit("/", 1)[1]
            if other != self.user:
                return self.reply([], 404, "User does not exist")
            return self.reply(self.user_data(other))
        if path == SHARES and method == "POST":
            return self.create_share(self.params())
        if path == SHARES and method == "GET":
            return self.list_shares(self.params())
        if path.startswith(SHARES + "/"):
            return self.one_share(path[len(SHARES) + 1:], method)
        return self.reply([], 998, "Invalid query, please check the syntax. API specifications are here: "
                                   "http://www.freedesktop.org/wiki/Specifications/open-collaboration-services.")

    def user_data(self, user: str) -> dict[str, Any]:
        used, free = self.nc.used(user), self.nc.free(user)
        quota = self.nc.quotas.get(user)
        total = quota if quota is not None else used + free
        return {"id": user, "enabled": True, "backend": "Database", "subadmin": [],
                "quota": {"free": free, "used": used, "total": total,
                          "relative": round(100 * used / total, 2) if total else 0, "quota": quota if quota else -3},
                "email": None, "displayname": "MRI Uploader", "display-name": "MRI Uploader", "groups": [],
                "language": "en", "locale": "", "backendCapabilities": {"setDisplayName": True, "setPassword": True}}

    # -- shares ----------------------------------------------------------------------------------
    def share_json(self, s: Share) -> dict[str, Any]:
        node = self.nc.files_root(self.user) / s.path.lstrip("/")
        is_file = node.is_file()
        return {
            "id": str(s.id), "share_type": 3, "uid_owner": self.user, "displayname_owner": "MRI Uploader",
            "permissions": s.permissions, "can_edit": True, "can_delete": True, "stime": s.stime, "parent": None,
            "expiration": f"{s.expiration.isoformat()} 00:00:00" if s.expiration else None, "token": s.token,
            "uid_file_owner": self.user, "note": "", "label": s.label, "displayname_file_owner": "MRI Uploader",
            "path": s.path, "item_type": "file" if is_file else "folder", "item_permissions": 27,
            "mimetype": "application/zip" if s.path.endswith(".zip") else "httpd/unix-directory",
            "has_preview": False, "storage_id": f"home::{self.user}", "storage": 4, "item_source": s.file_id,
            "file_source": s.file_id, "file_parent": self.nc.file_id(node.parent),
            "file_target": "/" + s.path.rsplit("/", 1)[-1], "item_size": node.stat().st_size if is_file else 0,
            "item_mtime": int(node.stat().st_mtime), "share_with": s.password_hash,
            "share_with_displayname": "(Shared link)", "password": s.password_hash, "send_password_by_talk": False,
            "url": f"{self.nc.base_url}/index.php/s/{s.token}", "mail_send": 0, "hide_download": 0,
            "attributes": None,
        }

    def check_password(self, password: str) -> str | None:
        """password_policy 1.19: an OCS 403 message, or None if the password is acceptable."""
        problems = []
        if password in COMMON_PASSWORDS:
            problems.append("Password is among the 1,000,000 most common ones. Please make it unique.")
        if len(password) < 10:
            problems.append("Password needs to be at least 10 characters long.")
        return " ".join(problems) or None

    def parse_expiry(self, value: str) -> tuple[date | None, str | None]:
        if value == "":
            return None, None
        try:
            when = date.fromisoformat(value[:10])
        except ValueError:
            return None, "Invalid date, date format must be YYYY-MM-DD"
        today = self.nc.server_today()
        if when <= today:
            return None, "Expiration date is in the past"
        if self.nc.max_expire_days is not None and (when - today).days > self.nc.max_expire_days:
            return None, f"Cannot set expiration date more than {self.nc.max_expire_days} days in the future"
        return when, None

    def create_share(self, p: dict[str, str]) -> None:
        for name in self.nc.ignored_share_params:
            p.pop(name, None)
        node = self.nc.files_root(self.user) / p.get("path", "").strip("/")
        if not p.get("path") or not node.exists():
            return self.reply([], 404, "Wrong path, file/folder does not exist")
        if p.get("shareType") != "3":
            return self.reply([], 400, "Unknown share type")
        password = p.get("password", "")
        if password:
            problem = self.check_password(password)
            if problem:
                return self.reply([], 403, problem)
        elif self.nc.enforce_password:
            return self.reply([], 403, "Passwords are enforced for link and mail shares")
        expiry, problem = self.parse_expiry(p.get("expireDate", ""))
        if problem:
            return self.reply([], 404, problem)
        with self.nc.lock:
            share = Share(self.nc.next_share_id, "/" + str(node.relative_to(self.nc.files_root(self.user))),
                          self.nc.file_id(node), secrets.token_urlsafe(12)[:15].replace("-", "a").replace("_", "b"),
                          expiry, _fake_hash(password) if password else None, p.get("label", ""), self.user)
            self.nc.shares[share.id] = share
            self.nc.next_share_id += 1
        data = self.share_json(share)
        data["mail_send"] = 1
        return self.reply(data)

    def live_shares(self) -> list[Share]:
        """All shares, deleting expired ones on access as Nextcloud does."""
        with self.nc.lock:
            for share in [s for s in self.nc.shares.values() if self.nc.share_expired(s)]:
                del self.nc.shares[share.id]
            return [s for s in self.nc.shares.values() if s.uid == self.user]

    def list_shares(self, p: dict[str, str]) -> None:
        shares = self.live_shares()
        if p.get("path"):
            target = "/" + p["path"].strip("/")
            node = self.nc.files_root(self.user) / target.lstrip("/")
            if not node.exists():
                return self.reply([], 404, "Wrong path, file/folder does not exist")
            if p.get("subfiles") == "true":
                shares = [s for s in shares if s.path.rsplit("/", 1)[0] == target]
            else:
                shares = [s for s in shares if s.path == target]
        return self.reply([self.share_json(s) for s in shares])

    def one_share(self, share_id: str, method: str) -> None:
        live = {str(s.id): s for s in self.live_shares()}
        share = live.get(share_id)
        if share is None:
            self.h._drain()
            return self.reply([], 404, "Wrong share ID, share does not exist")
        if method == "GET":
            return self.reply([self.share_json(share)])  # get_by_id answers a one-element list (§8.7)
        if method == "DELETE":
            with self.nc.lock:
                self.nc.shares.pop(share.id, None)
            return self.reply([])
        if method == "PUT":
            p = self.params()
            if "password" in p:
                if p["password"] and (problem := self.check_password(p["password"])):
                    return self.reply([], 403, problem)
                share.password_hash = _fake_hash(p["password"]) if p["password"] else None
            if "expireDate" in p:
                expiry, problem = self.parse_expiry(p["expireDate"])
                if problem:
                    return self.reply([], 404, problem)
                share.expiration = expiry
            if "label" in p:
                share.label = p["label"]
            return self.reply(self.share_json(share))
        return self.reply([], 998, "Invalid query")


class _Dav:
    """WebDAV below /remote.php/dav/: files/<user>/... and uploads/<user>/<folder>/..."""

    def __init__(self, handler: _Handler, user: str) -> None:
        self.h, self.nc, self.user = handler, handler.nc, user

    def error(self, status: int, exception: str, message: str, headers: dict[str, str] | None = None) -> None:
        self.h._send(status, _sabre(f"Sabre\\DAV\\Exception\\{exception}", message),
                     {"Content-Type": "application/xml; charset=utf-8", **(headers or {})})

    def node_headers(self, node: Path, with_etag: bool = True) -> dict[str, str]:
        headers = {"OC-FileId": f"{self.nc.file_id(node):08d}{INSTANCE_ID}"}
        if with_etag:
            headers.update({"ETag": _etag(node), "OC-ETag": _etag(node)})
        return {**headers, "Content-type": "text/html; charset=UTF-8"}

    def route(self, rest: str) -> None:
        kind, _, tail = rest.partition("/")
        owner, _, rel = tail.partition("/")
        if kind not in ("files", "uploads"):  # as Sabre answers for a root it does not have (no trash bin app)
            return self.error(404, "NotFound", f"File with name {kind} could not be located")
        if owner != self.user:
            return self.error(403, "Forbidden", "Access denied")
        rel = rel.strip("/")
        if kind == "uploads":
            return self.uploads(rel)
        node = self.nc.files_root(self.user) / rel
        method = self.h.command
        if method == "PROPFIND":
            return self.propfind(node, f"/remote.php/dav/files/{self.user}/{rel}")
        if method == "MKCOL":
            return self.mkcol(node)
        if method == "PUT":
            return self.put(node, rel)
        if method in ("GET", "HEAD"):
            if not node.is_file():
                return self.error(404, "NotFound", f"File with name /{rel} could not be located")
            return self.h._send(200, node.read_bytes(),
                                {"Content-Type": "application/octet-stream", **self.node_headers(node)})
        if method == "DELETE":
            return self.delete(node, rel)
        if method == "MOVE":
            return self.move_node(node, rel)
        return self.error(405, "MethodNotAllowed", "Method not allowed", {"Allow": DAV_ALLOW})

    def destination(self) -> tuple[Path, str] | None:
        """The file a `Destination` header names, or None if it is not in this user's files."""
        prefix = f"{self.nc.base_url}/remote.php/dav/files/{self.user}/"
        dest = self.h.headers.get("Destination", "")
        if not dest.startswith(prefix):
            return None
        rel = unquote(dest[len(prefix):]).strip("/")
        return self.nc.files_root(self.user) / rel, rel

    def propfind(self, node: Path, href: str) -> None:
        if not node.exists():
            name = href.split("/", 5)[-1]
            return self.error(404, "NotFound", f"File with name /{name} could not be located")
        nodes = [node]
        if node.is_dir() and self.h.headers.get("Depth", "1") != "0":
            nodes += sorted(node.iterdir())
        parts = []
        for item in nodes:
            item_href = href.rstrip("/") + ("" if item == node else "/" + item.name) + ("/" if item.is_dir() else "")
            st = item.stat()
            size = st.st_size if item.is_file() else sum(p.stat().st_size for p in item.rglob("*") if p.is_file())
            props = [
                "<d:resourcetype>" + ("<d:collection/>" if item.is_dir() else "") + "</d:resourcetype>",
                f"<d:getlastmodified>{formatdate(st.st_mtime, usegmt=True)}</d:getlastmodified>",
                f"<d:getetag>{escape(_etag(item), {chr(34): '&quot;'})}</d:getetag>",
                f"<oc:size>{size}</oc:size>",
                f"<oc:id>{self.nc.file_id(item):08d}{INSTANCE_ID}</oc:id><oc:fileid>{self.nc.file_id(item)}</oc:fileid>",
                "<oc:permissions>RGDNVW" + ("CK" if item.is_dir() else "") + "</oc:permissions>",
            ]
            if item.is_file():
                props.append(f"<d:getcontentlength>{size}</d:getcontentlength>")
                props.append("<d:getcontenttype>application/zip</d:getcontenttype>")
            parts.append(f"<d:response><d:href>{quote(item_href)}</d:href><d:propstat><d:prop>{''.join(props)}"
                         "</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>")
        body = ('<?xml version="1.0"?>\n<d:multistatus xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns" '
                'xmlns:oc="http://owncloud.org/ns" xmlns:nc="http://nextcloud.org/ns">'
                + "".join(parts) + "</d:multistatus>").encode()
        self.h._send(207, body, {"Content-Type": "application/xml; charset=utf-8", "Vary": "Brief,Prefer"})

    def mkcol(self, node: Path) -> None:
        if node.exists():  # f5 #3: over a file, Allow also lists PATCH
            return self.error(405, "MethodNotAllowed", "The resource you tried to create already exists",
                              {"Allow": DAV_ALLOW + (", PATCH" if node.is_file() else "")})
        if not node.parent.is_dir():
            return self.error(409, "Conflict", "Parent node does not exist")
        node.mkdir()
        self.h._send(201, b"", self.node_headers(node, with_etag=False))

    def store(self, target: Path) -> None:
        """Write the request body to `target` via a temporary file (a cut connection leaves nothing)."""
        part = target.with_name(f".{target.name}.part{secrets.token_hex(4)}")
        try:
            with open(part, "wb") as out:
                for piece in self.h._read_chunks():
                    out.write(piece)
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)

    def put(self, node: Path, rel: str) -> None:
        if not node.parent.is_dir():
            return self.error(409, "Conflict", "Files can only be created as children of collections")
        existed = node.exists()
        if existed and self.h.headers.get("If-None-Match", "").strip() == "*":
            return self.error(412, "PreconditionFailed", "An If-None-Match header was specified, but the ETag "
                                                          "matched (or * was specified).")
        size = self.h.body_left
        old = node.stat().st_size if existed else 0
        available = self.nc.free(self.user)
        if size - old > available:
            return self.error(507, "InsufficientStorage",
                              f"Insufficient space in /{rel}, {size} required, {available} available")
        self.store(node)
        headers = self.node_headers(node)
        if self.h.headers.get("X-OC-Mtime"):
            mtime = int(self.h.headers["X-OC-Mtime"])
            os.utime(node, (mtime, mtime))
            headers["X-OC-MTime"] = "accepted"
        self.h._send(204 if existed else 201, b"", headers)

    def delete(self, node: Path, rel: str) -> None:
        if not node.exists() or not rel:
            return self.error(404, "NotFound", f"File with name /{rel} could not be located")
        with self.nc.lock:
            for share in [s for s in self.nc.shares.values()
                          if s.uid == self.user and (s.path == "/" + rel or s.path.startswith(f"/{rel}/"))]:
                del self.nc.shares[share.id]
        shutil.rmtree(node) if node.is_dir() else node.unlink()
        self.h._send(204, b"", {"Content-type": "text/html; charset=UTF-8"})

    def overwrite_refused(self, target: Path) -> bool:
        return target.exists() and self.h.headers.get("Overwrite", "T").upper() == "F"

    def move_node(self, node: Path, rel: str) -> None:
        dest = self.destination()
        if not node.exists():
            return self.error(404, "NotFound", f"File with name /{rel} could not be located")
        if dest is None:
            return self.error(502, "BadGateway", "The destination node is not found")
        target, _ = dest
        if self.overwrite_refused(target):
            return self.error(412, "PreconditionFailed", "The destination node already exists, and the overwrite "
                                                          "header is set to false")
        if not target.parent.is_dir():
            return self.error(409, "Conflict", "The destination node is not found")
        existed = target.exists()
        os.replace(node, target)
        self.nc.file_ids[target] = self.nc.file_ids.pop(node, self.nc.file_id(target))
        self.h._send(204 if existed else 201, b"", self.node_headers(target))

    # -- chunked upload v2 ---------------------------------------------------------------------
    def uploads(self, rel: str) -> None:
        method = self.h.command
        folder_name, _, chunk = rel.partition("/")
        folder = self.nc.uploads_root(self.user) / folder_name
        if not folder_name:
            return self.error(405, "MethodNotAllowed", "Method not allowed", {"Allow": DAV_ALLOW})
        if method == "MKCOL" and not chunk:
            if folder.exists():
                return self.error(405, "MethodNotAllowed", "The resource you tried to create already exists",
                                  {"Allow": DAV_ALLOW})
            folder.mkdir()
            return self.h._send(201, b"", {"Content-type": "text/html; charset=UTF-8"})
        if not folder.is_dir():
            return self.error(404, "NotFound", f"File with name //{rel} could not be located")
        if method == "PROPFIND":
            return self.propfind(folder / chunk if chunk else folder,
                                 f"/remote.php/dav/uploads/{self.user}/{rel}")
        if method == "DELETE" and not chunk:
            shutil.rmtree(folder)
            return self.h._send(204, b"", {"Content-type": "text/html; charset=UTF-8"})
        if method == "PUT" and chunk and "/" not in chunk:
            total = self.h.headers.get("OC-Total-Length")
            available = self.nc.free(self.user)
            if total is not None and int(total) > available:  # x #6: quota checked at the first chunk PUT
                return self.error(507, "InsufficientStorage",
                                  f"Insufficient space in /, {total} required, {available} available")
            self.store(folder / chunk)
            return self.h._send(201, b"", {"Content-type": "text/html; charset=UTF-8"})
        if method == "MOVE" and chunk == ".file":
            return self.assemble(folder)
        return self.error(405, "MethodNotAllowed", "Method not allowed", {"Allow": DAV_ALLOW})

    def assemble(self, folder: Path) -> None:
        dest = self.destination()
        if dest is None:
            return self.error(400, "BadRequest", "Destination header missing or not in the user's files")
        target, _ = dest
        chunks = sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: int(p.name))
        size = sum(p.stat().st_size for p in chunks)
        total = self.h.headers.get("OC-Total-Length")
        if total is not None and int(total) != size:
            return self.error(400, "BadRequest", f"Chunks on server do not sum up to {total} but to {size} bytes")
        existed = target.exists()
        available = self.nc.free(self.user) + (target.stat().st_size if existed else 0)
        if size > available:
            return self.error(507, "InsufficientStorage",
                              f"Insufficient space in /, {size} required, {available} available")
        if self.overwrite_refused(target):
            return self.error(412, "PreconditionFailed", "The destination node already exists, and the overwrite "
                                                          "header is set to false")
        if not target.parent.is_dir():
            return self.error(409, "Conflict", "The destination node is not found")
        part = target.with_name(f".{target.name}.part{secrets.token_hex(4)}")
        with open(part, "wb") as out:
            for chunk in chunks:  # in-kernel copy, as an efficient server would assemble
                with open(chunk, "rb") as src:
                    left = chunk.stat().st_size
                    while left:
                        left -= os.copy_file_range(src.fileno(), out.fileno(), left)
        os.replace(part, target)
        shutil.rmtree(folder)
        self.h._send(204 if existed else 201, b"", self.node_headers(target))


class _Public:
    """What a participant's browser or WebDAV client reaches: public WebDAV and the share page (g)."""

    def __init__(self, handler: _Handler) -> None:
        self.h, self.nc = handler, handler.nc

    def share(self, token: str) -> Share | None:
        """The live share with this token; an expired one is deleted on access, as Nextcloud does."""
        with self.nc.lock:
            share = next((s for s in self.nc.shares.values() if s.token == token), None)
            if share is not None and self.nc.share_expired(share):
                del self.nc.shares[share.id]
                return None
            return share

    def unauthenticated(self, message: str) -> None:
        self.h._send(401, _sabre("Sabre\\DAV\\Exception\\NotAuthenticated", message), {
            "WWW-Authenticate": 'Basic realm="Nextcloud", charset="UTF-8"',
            "Content-Type": "application/xml; charset=utf-8"})

    def route(self, path: str) -> None:
        if path.startswith("/index.php/s/"):
            return self.page(path[len("/index.php/s/"):])
        auth = self.h.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return self.unauthenticated("No 'Authorization: Basic' header found. Either the client didn't send "
                                        "one, or the server is misconfigured, No public access to this resource.")
        login, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        if path.startswith("/public.php/dav/files/"):  # newer endpoint: the token is in the path
            token = path[len("/public.php/dav/files/"):].strip("/").split("/")[0]
        elif path.rstrip("/") == "/public.php/webdav":  # older endpoint: the token is the user name
            token = login
        else:
            return self.h._send(404, b"", {})
        share = self.share(token)
        if share is None or (share.password_hash and not _password_matches(password, share.password_hash)) or (
                not share.password_hash and password):
            return self.unauthenticated("Username or password was incorrect")
        return self.serve(share)

    def serve(self, share: Share, dav: bool = True) -> None:
        node = self.nc.files_root(share.uid) / share.path.lstrip("/")
        name = node.name
        if self.h.command == "PROPFIND":
            return _Dav(self.h, share.uid).propfind(node, "/public.php/webdav/")
        headers = {"Content-Type": "application/zip" if name.endswith(".zip") else "application/octet-stream",
                   "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}; filename=\"{name}\""}
        if dav:  # g #2, #7 carry ETags; the share page's /download (g #14, #16) does not
            headers.update({"ETag": _etag(node), "OC-ETag": _etag(node)})
        self.h._send(200, node.read_bytes(), headers)

    def page(self, rest: str) -> None:
        token, _, action = rest.partition("/")
        share = self.share(token)
        if share is None:
            return self.h._not_found_page()
        if share.password_hash:  # the password form (and its cookie dance) is not modelled
            target = "downloadshare" if action == "download" else "showshare"
            return self.h._send(303, b"", {"Location": f"/index.php/s/{token}/authenticate/{target}",
                                           "Content-type": "text/html; charset=UTF-8"})
        if action == "download":
            return self.serve(share, dav=False)
        return self.h._send(200, b"<!DOCTYPE html><html><body>share</body></html>",
                            {"Content-type": "text/html; charset=UTF-8"})
