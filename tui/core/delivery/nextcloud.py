"""Nextcloud destination: checked, resumable uploads and expiring read-only link shares.

Two clients, each where it is the better one (measured against ../shared/data/nextcloud-29/README.md
and the stand-in server):

- nc-py-api (`AsyncNextcloud`, on a private event loop per call, see `_NcPyApi`) does the OCS API: login,
  capabilities, and the link shares (list, change expiry, delete, and create through its generic `ocs()`
  call with a JSON body).
- Our own niquests calls do WebDAV: nc-py-api's `upload_stream` overwrites silently, has no progress
  callback and deletes its chunk folder on any error (no resume), so uploads use If-None-Match /
  `Overwrite: F`, byte progress and chunking v2 that resumes from the chunks already on the server.
  The look-ups, folders and deletes around an upload share that code, and so does the quota look-up
  before an upload (one plain OCS GET: nc-py-api's client costs a capabilities fetch per call).
- `sharing.create()`/`update(password=...)` would put the share password in the URL query string, where
  every web-server log keeps it; the create therefore sends the same request with a JSON body (e2).

TLS is always verified; `ca_bundle` adds a lab CA and wins over REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE in
the environment on both paths. Every failure (nc-py-api's `NextcloudException`, raw niquests errors,
timeouts) becomes one `MrishareError` line. Retries: network errors and 5xx, exponential backoff, a
bounded number of times. Expiry: see `destinations.expiry_date` (today + N + 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import importlib
import os
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Collection, Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

import niquests

from tui.core.delivery.base import STEP, Delivered, ShareInfo, SharePolicy, check_remote_name, expiry_date
from tui.core.errors import MrishareError
from tui.core.events import EventStream, StepFinished, StepNote, StepProgress, StepStarted, Throttle
from tui.core.safetext import human_bytes

if TYPE_CHECKING:
    from threading import Event

    from tui.core.credentials import Credentials

T = TypeVar("T")

DAV_NS = {"d": "DAV:", "oc": "http://owncloud.org/ns", "nc": "http://nextcloud.org/ns"}
TRASH_BODY = (
    b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:nc="http://nextcloud.org/ns"><d:prop>'
    b"<nc:trashbin-original-location/></d:prop></d:propfind>"
)
PROPFIND_BODY = (
    b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop>'
    b"<d:resourcetype/><d:getcontentlength/><d:getlastmodified/><oc:id/></d:prop></d:propfind>"
)
SLICE = 4 << 20  # body block handed to the socket: 1 MiB blocks reached 96% of curl -T, 64 KiB 78%, 4 MiB 100%
ORPHAN_GRACE = timedelta(days=2)
LINK_SHARE, READ = 3, 1
SHARES = "/ocs/v1.php/apps/files_sharing/api/v1/shares"
SHARES_V2 = "/ocs/v2.php/apps/files_sharing/api/v1/shares"
CAPABILITIES = "/ocs/v2.php/cloud/capabilities?format=json"
CURRENT_USER = "/ocs/v2.php/cloud/user?format=json"
NO_EXPIRY = date(1970, 1, 1)  # how nc-py-api reads back a share without expiry (`"expiration": null`)
DOTENV_OFF = "PYTHON_DOTENV_DISABLED"  # python-dotenv >= 1.2
_import_lock = threading.Lock()


def nc_py_api() -> ModuleType:
    """Import nc-py-api on first use, with python-dotenv's `.env` loading switched off.

    nc_py_api.options calls `load_dotenv()` on import, which reads a `.env` from the working directory
    (or a parent folder) into os.environ: credentials, NPA_NC_CERT=False or REQUESTS_CA_BUNDLE could then
    come from a file nobody meant to use. Only the nextcloud destination needs the package.
    """
    with _import_lock:
        if "nc_py_api" in sys.modules:  # imported already: its load_dotenv() has run (or was skipped)
            return sys.modules["nc_py_api"]
        previous = os.environ.get(DOTENV_OFF)
        os.environ[DOTENV_OFF] = "1"
        try:
            return importlib.import_module("nc_py_api")
        finally:
            if previous is None:
                del os.environ[DOTENV_OFF]
            else:
                os.environ[DOTENV_OFF] = previous


def _share_number(share_id: str) -> int:
    """Nextcloud's share ids are numbers (nc-py-api takes them as int)."""
    if not share_id.isdigit():
        raise MrishareError("not a Nextcloud link id", share_id or None)
    return int(share_id)


def _within(rel: str, shared: set[str]) -> bool:
    """True if `rel` or one of its folders is among `shared` (links to a file or to the share's folder)."""
    parts = rel.split("/")
    return any("/".join(parts[:i]) in shared for i in range(1, len(parts) + 1))


def _is_link(share: Any) -> bool:
    """True for a public link share (nc-py-api's ShareType rejects types it does not know)."""
    try:
        return share.share_type == LINK_SHARE
    except ValueError:
        return False


class _Transient(Exception):
    """A failure worth retrying (network error, timeout, 5xx); `args[0]` says what happened."""


class AlreadyThere(MrishareError):
    """A file written once (`put_bytes`) exists already with other content: another client wrote it first."""


class _TooLarge(MrishareError):
    """HTTP 413: the server, or a proxy in front of it, refuses a request body this large."""


class _UseChunks(Exception):
    """A single PUT refused as too large or broken off: go on in chunks, which resume; `args[0]` says why."""


class _OcsFailure(Exception):
    """An OCS answer with a failure status code (v1 sends it inside HTTP 200)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class _Body:
    """A file slice as a request body: SLICE blocks, counts bytes sent, stops on cancel."""

    def __init__(self, path: Path, offset: int, length: int, stop: Callable[[], bool]) -> None:
        self.path, self.offset, self.length, self.stop = path, offset, length, stop
        self.sent = 0

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        self.sent = 0
        with open(self.path, "rb") as src:
            src.seek(self.offset)
            while self.sent < self.length:
                if self.stop():
                    raise _Transient("cancelled")
                block = src.read(min(SLICE, self.length - self.sent))
                if not block:
                    raise MrishareError("package changed size during upload", self.path.name)
                self.sent += len(block)
                yield block


class _NcPyApi:
    """nc-py-api's `AsyncNextcloud`, one client per call on its own event loop, for the sync Destination methods.

    The client is built from explicit settings only (never from os.environ or a `.env`) and closed after
    the call, so no connection-pool task outlives it and threads need not take turns. The calls are a
    few short OCS requests per participant; the price is a capabilities fetch per sharing call.
    Call it from a worker thread, not from inside a running event loop.
    """

    def __init__(self, base: str, user: str, password: str, ca_bundle: str | None, timeout_s: float) -> None:
        self.settings: dict[str, Any] = {  # every option explicit, so nothing comes from os.environ
            "nextcloud_url": base, "dav_url_suffix": "remote.php/dav", "nc_auth_user": user, "nc_auth_pass": password,
            "npa_nc_cert": ca_bundle or True, "npa_timeout": timeout_s, "npa_timeout_dav": timeout_s,
            "xdebug_session": "", "chunked_upload_v2": True,
        }
        self.ca_bundle = ca_bundle

    def run(self, call: Callable[[Any], Awaitable[T]]) -> T:
        """`await call(client)` on a fresh event loop; exceptions pass through unchanged."""
        return asyncio.run(self._run(call))

    async def _run(self, call: Callable[[Any], Awaitable[T]]) -> T:
        client = self._connect()
        try:
            return await call(client)
        finally:  # nc-py-api has no public close()
            await client._session.adapter.close()
            await client._session.adapter_dav.close()

    def _connect(self) -> Any:
        client = nc_py_api().AsyncNextcloud(**self.settings)
        if self.ca_bundle:
            # nc-py-api hands npa_nc_cert to niquests as `session.verify`, and niquests replaces a session's
            # verify with REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE unless the session ignores the environment
            # (sessions.merge_environment_settings). So: trust_env off, and the environment's proxies for
            # this server (NO_PROXY applied) copied in, which trust_env would otherwise have supplied.
            # nc-py-api offers no setting for this; its two sessions are `_session.adapter(_dav)`.
            proxies = niquests.utils.get_environ_proxies(self.settings["nextcloud_url"])
            for session in (client._session.adapter, client._session.adapter_dav):
                session.trust_env, session.proxies = False, dict(proxies)
        return client


class NextcloudDestination:
    """Uploads into `remote_path` of one Nextcloud account and shares files as expiring links."""

    kind = "nextcloud"

    def __init__(self, credentials: Credentials, *, attempts: int = 5, backoff_s: float = 1.0) -> None:
        self.creds = credentials
        self.base = credentials.nextcloud_baseurl.rstrip("/").removesuffix("/index.php")
        self.user = credentials.username
        self.root = credentials.remote_path.strip("/")
        self.chunk = credentials.chunk_mib << 20
        self.single_put = credentials.single_put_mib << 20
        self.timeout = credentials.timeout_s
        self.attempts, self.backoff_s = attempts, backoff_s
        self.verify: str | bool = str(credentials.ca_bundle) if credentials.ca_bundle else True
        self._http = niquests.Session()
        self._http.auth = (self.user, credentials.password)
        self._dav = f"{self.base}/remote.php/dav/files/{quote(self.user)}"
        self._uploads = f"{self.base}/remote.php/dav/uploads/{quote(self.user)}"
        self._api = _NcPyApi(self.base, self.user, credentials.password,
                             str(credentials.ca_bundle) if credentials.ca_bundle else None, self.timeout)

    # -- HTTP with retries -------------------------------------------------------------------------
    def _attempt(self, method: str, url: str, ok: set[int], wait_s: float | None = None,
                 **kwargs: Any) -> niquests.Response:
        """One request: the response if its status is in `ok`, `_Transient`, or `MrishareError`."""
        wait_s = wait_s or self.timeout
        try:
            # verify per request: a session attribute would lose to REQUESTS_CA_BUNDLE from the environment
            resp = self._http.request(method, url, timeout=(min(10.0, self.timeout), wait_s), verify=self.verify,
                                      **kwargs)
        except niquests.exceptions.RequestException as exc:
            raise self._network_error(exc, wait_s) from None
        if resp.status_code in ok:
            return resp
        raise self._status_error(resp)

    def _network_error(self, exc: Exception, wait_s: float) -> Exception:
        """A niquests exception as `_Transient` (worth retrying) or, for TLS, a `MrishareError`."""
        if isinstance(exc, niquests.exceptions.Timeout):
            return _Transient(f"no answer within {wait_s:g} s")
        if isinstance(exc, niquests.exceptions.SSLError):
            return MrishareError("TLS certificate not trusted (set ca_bundle for a lab CA)", self.base)
        if isinstance(exc, (niquests.exceptions.ConnectionError, niquests.exceptions.ChunkedEncodingError)):
            return _Transient("connection failed")
        return _Transient(f"request failed ({type(exc).__name__})")

    def _status_error(self, resp: niquests.Response) -> Exception:
        code = resp.status_code
        assert code is not None  # a response that arrived has a status
        if code == 401:
            return MrishareError("login refused: check username and app password", self.base)
        if code == 503:
            maintenance = resp.headers.get("X-Nextcloud-Maintenance-Mode") or b"maintenance" in (resp.content or b"")
            return _Transient("server is in maintenance mode" if maintenance else "server unavailable (503)")
        if code >= 500 and code != 507:
            return _Transient(f"server error {code}")
        if code == 507:
            return MrishareError("not enough space on Nextcloud (quota)", self.base)
        if code == 413:
            return _TooLarge("the server refuses a request this large (413): set chunk_mib in the credentials "
                             "below its limit", self.base)
        return MrishareError(f"server answered {code} {resp.reason or ''}".strip(), self.base)

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """Run `call`, retrying `_Transient` failures with exponential backoff."""
        for attempt in range(self.attempts):
            try:
                return call()
            except _Transient as exc:
                problem = str(exc)
                if attempt + 1 < self.attempts:
                    self._sleep(attempt, None)
        raise MrishareError(f"{what}: {problem} (gave up after {self.attempts} tries)", self.base)

    def _sleep(self, attempt: int, cancel: Event | None) -> None:
        delay = self.backoff_s * 2**attempt
        if cancel is not None and cancel.wait(delay):
            raise MrishareError("cancelled")
        if cancel is None:
            time.sleep(delay)

    def _request(self, what: str, method: str, url: str, ok: set[int], **kwargs: Any) -> niquests.Response:
        return self._retrying(what, lambda: self._attempt(method, url, ok, **kwargs))

    def _url(self, path: str) -> str:
        return f"{self._dav}/{quote(path)}"

    def _full(self, remote_name: str) -> str:
        rel = check_remote_name(remote_name)
        return f"{self.root}/{rel}" if self.root else rel

    def close(self) -> None:
        """Close pooled connections (nc-py-api's client lives for one call only)."""
        self._http.close()

    # -- OCS API through nc-py-api ---------------------------------------------------------------------
    def _nc_once(self, call: Callable[[Any], Awaitable[T]]) -> T:
        """One nc-py-api call; its failures become `_Transient`, `_OcsFailure` or `MrishareError`."""
        npa = nc_py_api()
        try:
            return self._api.run(call)
        except npa.NextcloudMissingCapabilities:
            raise MrishareError("link sharing is switched off on this server", self.base) from None
        except npa.NextcloudException as exc:
            resp = exc.response
            if resp is None and exc.status_code == 408:  # nc-py-api's name for a niquests ReadTimeout
                raise _Transient(f"no answer within {self.timeout:g} s") from None
            if resp is not None and resp.status_code == 200:  # OCS v1 reports 403/404 inside HTTP 200
                raise _OcsFailure(exc.status_code, exc.reason) from None
            if resp is not None:
                raise self._status_error(resp) from None
            raise MrishareError(f"server answered {exc.status_code} {exc.reason}".strip(), self.base) from None
        except niquests.exceptions.RequestException as exc:  # connection errors are not NextcloudException
            raise self._network_error(exc, self.timeout) from None
        except (ValueError, KeyError, TypeError):
            raise MrishareError("the server's answer is not an OCS reply", self.base) from None

    def _nc(self, what: str, call: Callable[[Any], Awaitable[T]]) -> T:
        """`_nc_once` with retries."""
        return self._retrying(what, lambda: self._nc_once(call))

    def _quota(self) -> dict[str, Any]:
        """`{"free", "used", "total", "relative", "quota"}`; quota -3 means unlimited (then free = disk)."""
        resp = self._request("quota", "GET", f"{self.base}{CURRENT_USER}", {200},
                             headers={"OCS-APIRequest": "true", "Accept": "application/json"})
        try:
            quota = resp.json()["ocs"]["data"]["quota"]
        except (ValueError, KeyError, TypeError):
            raise MrishareError("the server's answer is not an OCS reply", self.base) from None
        return quota if isinstance(quota, dict) else {}

    def check(self) -> list[tuple[str, bool, str]]:
        """Login, link-sharing rights, quota and the upload folder, in plain words."""

        async def probe(nc: Any) -> tuple[str, dict[str, Any], list[str]]:
            me = await nc.users.get_user()  # /cloud/user: logs in and brings the quota along
            missing = await nc.check_capabilities(["files_sharing.api_enabled", "files_sharing.public.enabled"])
            return me.user_id, me.quota, missing

        try:
            user, quota, missing = self._nc("connection test", probe)
        except (MrishareError, _OcsFailure) as exc:
            reason = exc.reason if isinstance(exc, MrishareError) else f"connection test: {exc.message}"
            return [("login", False, reason)]
        result = [("login", True, f"logged in as {user}")]
        free = quota.get("free")
        if isinstance(free, int) and free >= 0:
            limit = quota.get("quota", -3)
            detail = f"{human_bytes(free)} free" + ("" if not isinstance(limit, int) or limit < 0 else
                                                    f" of {human_bytes(limit)}")
            result.append(("quota", free > 0, detail))
        else:
            result.append(("quota", True, "the server does not report free space"))
        result.append(("share rights", not missing,
                       "link sharing is enabled" if not missing else "link sharing is switched off on this server"))
        try:
            found = self._stat(self.root) if self.root else {"dir": True}
        except MrishareError as exc:
            result.append(("folder", False, exc.reason))
        else:
            if found is None:
                result.append(("folder", True, f"{self.root} will be created on the first upload"))
            else:
                result.append(("folder", found["dir"], f"{self.root or '/'} " + (
                    "exists" if found["dir"] else "is a file, not a folder")))
        return result

    def _capabilities(self) -> dict[str, Any]:
        """The server's capabilities (logs in: a wrong app password is a clear error here)."""
        resp = self._request("capabilities", "GET", f"{self.base}{CAPABILITIES}", {200},
                             headers={"OCS-APIRequest": "true", "Accept": "application/json"})
        try:
            caps = resp.json()["ocs"]["data"]["capabilities"]
        except (ValueError, KeyError, TypeError):
            raise MrishareError("the server's answer is not an OCS reply", self.base) from None
        return caps if isinstance(caps, dict) else {}

    def policy(self) -> SharePolicy:
        """Link rules from the capabilities: enforced password and expiry, the password policy's minimum length.

        Also refuses early when link sharing is off, and takes the server's chunk size limit into account.
        """
        caps = self._capabilities()
        public = caps.get("files_sharing", {}).get("public", {})
        if not caps.get("files_sharing", {}).get("api_enabled", False) or not public.get("enabled", False):
            raise MrishareError("link sharing is switched off on this server", self.base)
        expire = public.get("expire_date", {})
        # Nextcloud takes a date up to today + days; a link giving N full days needs today + N + 1
        max_days = int(expire.get("days", 0)) - 1 if expire.get("enforced") else None
        max_chunk = caps.get("files", {}).get("chunked_upload", {}).get("max_size")  # the largest request it takes
        if isinstance(max_chunk, int) and max_chunk > 0:
            self.chunk, self.single_put = min(self.chunk, max_chunk), min(self.single_put, max_chunk)
        return SharePolicy(password_required=bool(public.get("password", {}).get("enforced")),
                           password_min_length=int(caps.get("password_policy", {}).get("minLength", 0) or 0),
                           max_expire_days=max_days)

    def find_share(self, share_id: str) -> ShareInfo | None:
        """The link as the server has it now (OCS GET); None when it was deleted or has expired."""
        number = _share_number(share_id)
        resp = self._request("look up link", "GET", f"{self.base}{SHARES_V2}/{number}?format=json", {200, 404},
                             headers={"OCS-APIRequest": "true", "Accept": "application/json"})
        if resp.status_code == 404:  # deleted, or expired (the server deletes it on this first access)
            return None
        try:
            data = resp.json()["ocs"]["data"]
            info = self._info(nc_py_api().files.Share(data[0] if isinstance(data, list) else data))
        except (ValueError, KeyError, TypeError, IndexError):
            raise MrishareError("the server's answer is not an OCS reply", self.base) from None
        return None if info.expires is not None and info.expires <= date.today() else info

    # -- WebDAV ---------------------------------------------------------------------------------------
    def _propfind(self, url: str, depth: int, once: bool = False) -> list[dict[str, Any]] | None:
        """Entries (href, size, dir, mtime, file_id) of a PROPFIND, or None for 404; `once`: no retries."""
        send = self._attempt if once else functools.partial(self._request, "look-up")
        resp = send("PROPFIND", url, {207, 404}, data=PROPFIND_BODY,
                    headers={"Depth": str(depth), "Content-Type": "application/xml; charset=utf-8"})
        if resp.status_code == 404:
            return None
        try:
            responses = ET.fromstring(resp.content or b"").findall("d:response", DAV_NS)
        except ET.ParseError:
            raise MrishareError("the server's answer is not WebDAV XML", self.base) from None
        entries = []
        for node in responses:
            href = unquote(node.findtext("d:href", "", DAV_NS))
            props = node.find("d:propstat/d:prop", DAV_NS)
            if props is None:
                continue
            length = props.findtext("d:getcontentlength", None, DAV_NS)
            modified = props.findtext("d:getlastmodified", None, DAV_NS)
            entries.append({
                "href": href.rstrip("/"),
                "size": int(length) if length else 0,
                "dir": props.find("d:resourcetype/d:collection", DAV_NS) is not None,
                "mtime": parsedate_to_datetime(modified) if modified else None,
                "file_id": props.findtext("oc:id", None, DAV_NS),
            })
        return entries

    def _stat(self, path: str) -> dict[str, Any] | None:
        entries = self._propfind(self._url(path), 0)
        return entries[0] if entries else None

    def exists(self, remote_name: str) -> bool:
        """True if `remote_path/remote_name` is on the server."""
        return self._stat(self._full(remote_name)) is not None

    def _makedirs(self, folder: str) -> None:
        """Create `folder` and its missing parents: one MKCOL when only the last one is missing (409: a parent is)."""
        parts = [p for p in folder.split("/") if p]
        if not parts:
            return
        # 201 created, 405 already there (b-makedirs #4-6), 409 a parent is missing
        if self._request("create folder", "MKCOL", self._url(folder), {201, 405, 409}).status_code != 409:
            return
        for i in range(1, len(parts) + 1):
            self._request("create folder", "MKCOL", self._url("/".join(parts[:i])), {201, 405})

    def _delete(self, url: str) -> None:
        self._request("delete", "DELETE", url, {204, 404})

    # -- upload ---------------------------------------------------------------------------------------
    def upload(self, local: Path, remote_name: str, cancel: Event | None = None) -> EventStream[Delivered]:
        """Upload with byte progress: no overwrite, quota first; one PUT up to `single_put_mib`, else resumable chunks.

        A single PUT is about twice as fast (the server writes chunks twice: as chunks, then joined), so it is
        used wherever the server takes the request; one that is refused (413) or breaks off goes on in chunks.
        The server compares what it wrote with Content-Length (PUT) or OC-Total-Length (MOVE) before it
        answers 201, so the size needs no look-up afterwards; only a server that sends no file id gets one.
        """
        local = Path(local)
        rel = check_remote_name(remote_name)
        full = self._full(rel)
        size = local.stat().st_size
        yield StepStarted(rel, STEP, total=size)
        free = self._quota().get("free")
        if isinstance(free, int) and free >= 0 and size > free:
            raise MrishareError(f"not enough space on Nextcloud: need {human_bytes(size)}, "
                                f"{human_bytes(free)} free", rel)
        self._makedirs(full.rsplit("/", 1)[0] if "/" in full else "")
        try:
            if size > self.single_put:
                raise _UseChunks("")
            # If-None-Match refuses an existing file, so no look-up first (it would cost ~5% of 300 MB)
            file_id = yield from self._upload_single(local, full, rel, size, cancel)
        except _UseChunks as why:
            if why.args[0]:
                yield StepNote(rel, STEP, f"{why.args[0]}; going on in {human_bytes(self.chunk)} chunks", "warning")
            elif self._stat(full) is not None:  # before any chunk: the MOVE would refuse only at the end
                raise MrishareError("already exists on Nextcloud; refusing to overwrite", rel) from None
            file_id = yield from self._upload_chunked(local, full, rel, size, cancel)
        if not file_id:
            landed = self._stat(full)
            if landed is None or landed["size"] != size:
                raise MrishareError("size on Nextcloud differs from the package after upload", rel)
            file_id = landed["file_id"]
        yield StepFinished(rel, STEP, f"{human_bytes(size)} uploaded")
        return Delivered(rel, size, file_id)

    def _send(self, method: str, url: str, body: _Body, headers: dict[str, str], ok: set[int], rel: str,
              base: int, total: int, stop: threading.Event) -> EventStream[niquests.Response]:
        """One request with a file body on a helper thread, yielding byte progress meanwhile."""
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["resp"] = self._attempt(method, url, ok, data=body, headers=headers)
            except BaseException as exc:  # handed to the generator below
                outcome["exc"] = exc

        worker = threading.Thread(target=run, name="mrishare-upload", daemon=True)
        worker.start()
        throttle = Throttle()
        try:
            while worker.is_alive():
                worker.join(0.25)
                if throttle.ready(base + body.sent, None):
                    yield StepProgress(rel, STEP, base + body.sent, total, unit="bytes")
        finally:
            if worker.is_alive():  # the consumer stopped early: make the body raise and end the thread
                stop.set()
        if "exc" in outcome:
            raise outcome["exc"]
        return outcome["resp"]

    def _landed(self, full: str, size: int) -> dict[str, Any] | None:
        """After a lost answer: the file, if our request did complete on the server. One try: the caller's
        retries wait for a server that is down (retrying here too made a dead server cost ~80 s, not ~15)."""
        try:
            entries = self._propfind(self._url(full), 0, once=True)
        except (MrishareError, _Transient):
            return None
        found = entries[0] if entries else None
        return found if found is not None and found["size"] == size else None

    def _upload_single(self, local: Path, full: str, rel: str, size: int,
                       cancel: Event | None) -> EventStream[str | None]:
        """One PUT, retried; raises `_UseChunks` when a file larger than a chunk is refused or breaks off."""
        chunkable = size > self.chunk
        stop = threading.Event()
        stopped = lambda: stop.is_set() or (cancel is not None and cancel.is_set())  # noqa: E731
        # If-None-Match: * makes the server refuse (412) instead of silently overwriting (c #2).
        headers = {"If-None-Match": "*", "Content-Type": "application/octet-stream"}
        for attempt in range(self.attempts):
            try:
                resp = yield from self._send("PUT", self._url(full), _Body(local, 0, size, stopped), headers,
                                             {201, 204, 412}, rel, 0, size, stop)
                if resp.status_code != 412:
                    return resp.headers.get("OC-FileId")
                if attempt and (landed := self._landed(full, size)):  # our lost first PUT did land
                    return landed["file_id"]
                raise MrishareError("already exists on Nextcloud; refusing to overwrite", rel)
            except _TooLarge as exc:
                if chunkable:
                    raise _UseChunks(exc.reason.split(":")[0]) from None
                raise
            except _Transient as exc:
                if stopped():
                    raise MrishareError("upload cancelled", rel) from None
                if landed := self._landed(full, size):
                    return landed["file_id"]
                problem = str(exc)
                if chunkable:  # chunks resume where a second break-off leaves them
                    raise _UseChunks(f"upload interrupted ({problem})") from None
                yield StepNote(rel, STEP, f"upload interrupted ({problem}); retrying", "warning")
                if attempt + 1 < self.attempts:
                    self._sleep(attempt, cancel)
        raise MrishareError(f"upload: {problem} (gave up after {self.attempts} tries)", rel)

    def _upload_folder(self, local: Path, full: str, size: int) -> str:
        """A chunk folder name that is the same for the same file and target, so a rerun resumes."""
        key = f"{self.user}\0{full}\0{size}\0{local.stat().st_mtime_ns}".encode()
        return f"{self._uploads}/mrishare-{hashlib.sha256(key).hexdigest()[:40]}"

    def _chunks_present(self, folder: str, headers: dict[str, str]) -> dict[str, int]:
        """Create the chunk folder if needed and list the chunks already on the server."""
        if self._attempt("MKCOL", folder, {201, 405}, headers=headers).status_code == 201:
            return {}  # a new folder: nothing to resume
        entries = self._propfind(folder, 1) or []
        return {e["href"].rsplit("/", 1)[-1]: e["size"] for e in entries if not e["dir"]}

    def _upload_chunked(self, local: Path, full: str, rel: str, size: int,
                        cancel: Event | None) -> EventStream[str | None]:
        """Chunking v2: MKCOL folder, PUT 00001..N, MOVE .file; resumes from chunks on the server."""
        folder = self._upload_folder(local, full, size)
        target = {"Destination": self._url(full), "OC-Total-Length": str(size)}
        spans = [(i // self.chunk + 1, i, min(self.chunk, size - i)) for i in range(0, size, self.chunk)]
        stop = threading.Event()
        stopped = lambda: stop.is_set() or (cancel is not None and cancel.is_set())  # noqa: E731
        failures, done_ok = 0, False
        try:
            while True:
                try:
                    if failures and (landed := self._landed(full, size)):
                        done_ok = True
                        return landed["file_id"]
                    present = self._chunks_present(folder, target)
                    if present:
                        yield StepNote(rel, STEP, f"resuming: {len(present)} chunk(s) already on the server")
                    for number, offset, length in spans:
                        name = f"{number:05d}"
                        if present.get(name) == length:
                            continue
                        yield from self._send("PUT", f"{folder}/{name}", _Body(local, offset, length, stopped),
                                              target, {201, 204}, rel, offset, size, stop)
                        failures = 0
                    yield StepProgress(rel, STEP, size, size, unit="bytes")
                    # the server joins the chunks before it answers: allow for ~50 MB/s of copying
                    resp = self._attempt("MOVE", f"{folder}/.file", {201, 204, 412}, self.timeout + size / 50e6,
                                         headers={**target, "Overwrite": "F"})
                    if resp.status_code == 412:
                        raise MrishareError("already exists on Nextcloud; refusing to overwrite", rel)
                    done_ok = True
                    return resp.headers.get("OC-FileId")
                except _Transient as exc:
                    if stopped():
                        raise MrishareError("upload cancelled", rel) from None
                    failures += 1
                    if failures >= self.attempts:
                        raise MrishareError(f"upload: {exc} (gave up after {failures} tries)", rel) from None
                    yield StepNote(rel, STEP, f"upload interrupted ({exc}); resuming", "warning")
                    self._sleep(failures - 1, cancel)
        finally:
            if not done_ok:  # leave no orphaned chunk folder behind; a kill -9 skips this and resumes later
                with contextlib.suppress(MrishareError, _Transient):
                    self._attempt("DELETE", folder, {204, 404})

    # -- shares (nc-py-api; the create goes with a JSON body) ------------------------------------------
    def _info(self, share: Any) -> ShareInfo:
        """ShareInfo from nc-py-api's `Share` (its `password` is the server's hash, or empty)."""
        expires = share.expire_date.date()
        path = share.path
        return ShareInfo(str(share.share_id), share.url, None if expires == NO_EXPIRY else expires,
                         bool(share.password), share.label or "", path[len(self.root) + 1:] if self.root else path)

    def share(self, delivered_path: str, expire_days: int, label: str, password: str | None = None) -> ShareInfo:
        """Read-only link with expiry today + N + 1; the password travels in the body, never the URL."""
        path = self._full(delivered_path)
        expires = expiry_date(expire_days)
        body: dict[str, Any] = {"path": path, "shareType": LINK_SHARE, "permissions": READ,
                                "expireDate": expires.isoformat(), "label": label}
        if password:
            body["password"] = password
        tries = 0

        async def post(nc: Any) -> Any:
            # not sharing.create(): it sends every parameter, the password too, in the URL query string
            return nc_py_api().files.Share(await nc.ocs("POST", SHARES, json=body))

        def create() -> ShareInfo:
            nonlocal tries
            tries += 1
            if tries > 1:  # the lost attempt may have created a share: remove it, no half shares
                self._drop_shares(path, label)
            return self._info(self._nc_once(post))  # one try here: a retry must clean up first

        try:
            info = self._retrying("create link", create)
        except _OcsFailure as exc:
            raise MrishareError(f"link refused: {exc.message}", delivered_path) from None
        if info.expires != expires or info.has_password != bool(password):
            # the server ignored a setting (an old or unusual server): no half-protected link stays
            self._delete_share(info.share_id)
            raise MrishareError("the server did not keep the link's expiry or password; link removed",
                                delivered_path)
        return info

    def _drop_shares(self, path: str, label: str) -> None:
        try:
            found = self._nc("list links", lambda nc: nc.files.sharing.get_list(path=path))
        except _OcsFailure:
            return
        for share in found:
            if (share.label or "") == label:
                self._delete_share(str(share.share_id))

    def _delete_share(self, share_id: str) -> None:
        number = _share_number(share_id)
        try:
            self._nc("delete link", lambda nc: nc.files.sharing.delete(number))
        except _OcsFailure as exc:
            if exc.code != 404:  # already gone (deleted or expired)
                raise MrishareError(f"link not deleted: {exc.message}", share_id) from None

    def revoke(self, share_id: str, remote_path: str) -> None:
        """Delete the link (if one was made: `share_id` may be empty), then what it shared (the share's folder
        with zip and passphrase page, or the zip alone with its now-empty folder) and that from the trash bin,
        so the encrypted package is gone from the server."""
        if share_id:
            self._delete_share(share_id)
        self._delete_file(self._full(remote_path))

    def _delete_file(self, path: str) -> None:
        """Delete a file and its now-empty folder, then empty both from the user's trash bin."""
        self._delete(self._url(path))
        gone = {path}
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if parent and parent != self.root and (not self.root or parent.startswith(f"{self.root}/")):
            entries = self._propfind(self._url(parent), 1)
            if entries is not None and len(entries) == 1:
                self._delete(self._url(parent))
                gone.add(parent)
        self._purge_trash(gone)

    def _purge_trash(self, paths: set[str]) -> None:
        """Delete the trash-bin items that were these paths (WebDAV trashbin; no trash bin app: nothing to do)."""
        url = f"{self.base}/remote.php/dav/trashbin/{quote(self.user)}/trash"
        resp = self._request("look-up", "PROPFIND", url, {207, 404, 405}, data=TRASH_BODY,
                             headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"})
        if resp.status_code != 207:
            return
        try:
            nodes = ET.fromstring(resp.content or b"").findall("d:response", DAV_NS)
        except ET.ParseError:
            raise MrishareError("the server's answer is not WebDAV XML", self.base) from None
        for node in nodes[1:]:
            where = node.findtext("d:propstat/d:prop/nc:trashbin-original-location", "", DAV_NS)
            if where in paths:
                origin = urlsplit(self.base)
                self._delete(f"{origin.scheme}://{origin.netloc}{node.findtext('d:href', '', DAV_NS)}")

    def extend(self, share_id: str, expire_days: int) -> ShareInfo:
        """Set the link's expiry to give `expire_days` full days from today."""
        number, until = _share_number(share_id), expiry_date(expire_days)
        try:  # sharing.update() puts expireDate in the query string: no secret in it
            return self._info(self._nc("extend link", lambda nc: nc.files.sharing.update(number, expire_date=until)))
        except _OcsFailure as exc:
            if exc.code == 404 and "share" in exc.message.lower():
                raise MrishareError("link no longer exists (expired links are removed); share again",
                                    share_id) from None
            raise MrishareError(f"link not extended: {exc.message}", share_id) from None

    def list_shares(self) -> list[ShareInfo]:
        """Live links on files below `remote_path` (Nextcloud drops expired ones when listing)."""
        try:
            found = self._nc("list links", lambda nc: nc.files.sharing.get_list())
        except _OcsFailure as exc:
            raise MrishareError(f"links not listed: {exc.message}", self.base) from None
        prefix = f"{self.root}/" if self.root else ""
        return [self._info(s) for s in found if _is_link(s) and s.path.startswith(prefix)]

    def _files(self, folder: str) -> Iterator[dict[str, Any]]:
        """Every file below `folder` (Depth 1 walks; Depth infinity is often disabled)."""
        entries = self._propfind(self._url(folder), 1) or []
        prefix = unquote(urlsplit(self._dav).path) + "/"
        for entry in entries[1:]:
            rel = entry["href"][len(prefix):] if entry["href"].startswith(prefix) else entry["href"]
            if entry["dir"]:
                yield from self._files(rel)
            else:
                yield {**entry, "path": rel}

    def cleanup_expired(self, today: date | None = None, owned: Collection[str] | None = None) -> list[str]:
        """Delete files below `remote_path` whose link expired (or is gone and the file is > 2 days old);
        given `owned`, only those remote paths (one ledger's) are touched.

        Nextcloud deletes an expired share but keeps its file, so a file with no live link is an
        expired leftover once it is older than ORPHAN_GRACE (younger ones may still be being shared).
        """
        if not self.root:
            raise MrishareError("clean-up needs remote_path: it only deletes inside mrishare's own folder")
        today = today or date.today()
        removed = []
        live = {}
        for info in self.list_shares():
            if owned is not None and info.remote_path not in owned:
                continue
            if info.expires is not None and info.expires <= today:
                self.revoke(info.share_id, info.remote_path)
                removed.append(info.remote_path)
            else:
                live[info.remote_path] = info
        cutoff = datetime.combine(today, datetime.min.time(), UTC) - ORPHAN_GRACE
        for entry in list(self._files(self.root)):
            rel = entry["path"][len(self.root) + 1:]
            if _within(rel, live.keys() | set(removed)) or (owned is not None and not _within(rel, set(owned))):
                continue
            if entry["mtime"] is not None and entry["mtime"] < cutoff:
                self._delete_file(entry["path"])
                removed.append(rel)
        return removed

    # -- WebDAV for a job folder (processing destination, worker): paths relative to `remote_path` --------
    def makedirs(self, remote_name: str) -> None:
        """Create a folder and its parents (no error when they exist)."""
        self._makedirs(self._full(remote_name))

    def list_folder(self, remote_name: str) -> list[tuple[str, bool]] | None:
        """(name, is_folder) of each entry directly in a folder; None when the folder does not exist."""
        entries = self._propfind(self._url(self._full(remote_name)), 1)
        return None if entries is None else [(e["href"].rsplit("/", 1)[-1], e["dir"]) for e in entries[1:]]

    def move(self, source: str, target: str) -> bool:
        """Rename `source` to `target` in one server-side step, never overwriting.

        False when another client was first: the target exists (412), its parent or the source is gone
        (409/404), or the source is locked by a concurrent move (423). When an earlier try got no answer, a
        refusal may be that try having landed: with the source gone and the target there, the move counts as
        done (a caller racing other clients for the same source must settle who moved it, as the worker's claim
        does with worker.json).
        """
        tries = 0

        def once() -> niquests.Response:
            nonlocal tries
            tries += 1
            return self._attempt("MOVE", self._url(self._full(source)), {201, 204, 404, 409, 412, 423},
                                 headers={"Destination": self._url(self._full(target)), "Overwrite": "F"})

        resp = self._retrying("move", once)
        if resp.status_code in (201, 204):
            return True
        return tries > 1 and resp.status_code in (404, 412) and not self.exists(source) and self.exists(target)

    def put_bytes(self, remote_name: str, data: bytes) -> None:
        """Write a small file, refusing to overwrite one that exists (`AlreadyThere`); a refusal after a try that
        got no answer is that try having landed when the file holds `data`."""
        tries = 0

        def once() -> niquests.Response:
            nonlocal tries
            tries += 1
            return self._attempt("PUT", self._url(self._full(remote_name)), {201, 204, 412}, data=data,
                                 headers={"If-None-Match": "*", "Content-Type": "application/octet-stream"})

        if self._retrying("upload", once).status_code != 412:
            return
        if tries > 1 and self._request("download", "GET", self._url(self._full(remote_name)), {200}).content == data:
            return
        raise AlreadyThere("already exists on Nextcloud; refusing to overwrite", remote_name)

    def download(self, remote_name: str, local: Path) -> int:
        """Copy a remote file to `local` (written under a temporary name, then renamed); its size."""
        local = Path(local)
        part = local.with_name(f".{local.name}.part")

        def fetch() -> int:
            resp = self._attempt("GET", self._url(self._full(remote_name)), {200}, stream=True)
            size = 0
            with open(part, "wb") as out:
                try:
                    for block in resp.iter_content(SLICE):
                        out.write(block)
                        size += len(block)
                except niquests.exceptions.RequestException as exc:
                    raise self._network_error(exc, self.timeout) from None
            return size

        try:
            size = self._retrying("download", fetch)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        part.replace(local)
        return size

    def remove(self, remote_name: str) -> None:
        """Delete a file or folder, and from the trash bin too (no error when it is already gone)."""
        full = self._full(remote_name)
        self._delete(self._url(full))
        self._purge_trash({full})
