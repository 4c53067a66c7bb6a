"""The real Nextcloud 29 of ../shared/nextcloud-server as a pytest fixture (started once per test session).

`start.sh DIR` (a temporary DIR: the shared folder is read-only in CI) installs its Debian PHP packages when
they are missing, installs the server on 127.0.0.1 and prints `NC_*=` lines; `stop.sh DIR` stops it. Every
test module that uses `nextcloud` carries `pytest.mark.xdist_group("nextcloud")`, so with `-n 2 --dist
loadgroup` one worker runs them all and the server starts once. A test changes the server's policies only
through `NextcloudServer.app_setting`, `quota` and `maintenance`, which the per-test fixture undoes.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import niquests
import pytest

REPO = Path(__file__).resolve().parents[1]
KIT = Path(os.environ.get("MRISHARE_SHARED", REPO.parent / "shared")).resolve() / "nextcloud-server"
XDIST_GROUP = pytest.mark.xdist_group("nextcloud")
KEEP = "MRISHARE_NEXTCLOUD_DIR"
"""Set to a WORKDIR (and NC_PORT) to reuse a running instance across test sessions while developing."""


def _listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class NextcloudServer:
    """A running kit instance: URLs, the uploader's app password, admin switches (occ) and SQL."""

    workdir: Path
    env: dict[str, str]
    _undo: list[Callable[[], None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.env["NC_URL"]

    @property
    def user(self) -> str:
        return self.env["NC_USER"]

    @property
    def app_password(self) -> str:
        return self.env["NC_APP_PASSWORD"]

    def occ(self, *args: str) -> str:
        """`php occ ARGS` in the server folder; its output, or AssertionError with stderr."""
        done = subprocess.run(["php", "occ", "--no-interaction", "--no-ansi", *args], cwd=self.workdir / "server",
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"occ {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def sql(self, statement: str) -> str:
        """One SQL statement through the kit's `sql.sh` (PHP PDO on the instance's SQLite file)."""
        done = subprocess.run([str(KIT / "sql.sh"), str(self.workdir), statement], capture_output=True, text=True,
                              check=False, timeout=60)
        assert done.returncode == 0, f"sql.sh: {done.stdout}{done.stderr}"
        return done.stdout

    # -- switches that the per-test fixture undoes --------------------------------------------------
    def app_setting(self, key: str, value: str) -> None:
        """`occ config:app:set core KEY --value=VALUE` (sharing policies), undone after the test."""
        self.occ("config:app:set", "core", key, f"--value={value}")
        self._undo.append(lambda: self.occ("config:app:delete", "core", key))

    def enforce_expiry(self, days: int) -> None:
        """The server's 'enforce a maximum link expiry of DAYS days'."""
        self.app_setting("shareapi_default_expire_date", "yes")
        self.app_setting("shareapi_enforce_expire_date", "yes")
        self.app_setting("shareapi_expire_after_n_days", str(days))

    def quota(self, value: str) -> None:
        """The uploader's quota, e.g. "1 MB"; back to none after the test."""
        self.occ("user:setting", self.user, "files", "quota", value)
        self._undo.append(lambda: self.occ("user:setting", self.user, "files", "quota", "none"))

    def maintenance(self) -> None:
        """Maintenance mode on; off after the test."""
        self.occ("maintenance:mode", "--on")
        self._undo.append(lambda: self.occ("maintenance:mode", "--off"))

    def undo(self) -> None:
        """Undo the switches of the last test, newest first."""
        while self._undo:
            self._undo.pop()()

    # -- what the server holds ------------------------------------------------------------------------
    def dav(self, method: str, path: str = "", **kwargs: object) -> niquests.Response:
        """A WebDAV request as the uploader below `remote.php/dav/`."""
        return niquests.request(method, f"{self.url}/remote.php/dav/{path}", auth=(self.user, self.app_password),
                                timeout=30, **kwargs)

    def files(self, folder: str) -> list[str]:
        """Files below `folder` of the uploader (paths relative to it), from the server's file cache."""
        rows = self.sql(f"SELECT path FROM oc_filecache WHERE path LIKE 'files/{folder}/%' AND mimetype != "
                        "(SELECT id FROM oc_mimetypes WHERE mimetype='httpd/unix-directory')")
        return sorted(line.removeprefix(f"files/{folder}/") for line in rows.splitlines())

    def trash(self) -> list[str]:
        """What lies in the uploader's trash bin on the server's disk (name.dTIMESTAMP)."""
        folder = self.workdir / "data" / self.user / "files_trashbin" / "files"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def shares(self) -> list[dict[str, str]]:
        """Every share row in the server's database (id, file_target, expiration, token; NULL for none)."""
        names = ("id", "file_target", "expiration", "token")
        rows = self.sql(f"SELECT {', '.join(names)} FROM oc_share")
        return [dict(zip(names, line.split("\t"), strict=True)) for line in rows.splitlines()]

    def credentials(self, folder: Path, **overrides: object) -> Path:
        """A 0600 credentials.json for the uploader in `folder` (a fresh remote_path unless given); files above
        5 MiB go in 5 MiB chunks, so the tests' files of 11-40 MiB exercise the chunked upload."""
        raw = {"destination": "nextcloud", "nextcloud_baseurl": self.url, "username": self.user,
               "password": self.app_password, "remote_path": f"MRI-{secrets.token_hex(4)}", "chunk_mib": 5,
               "single_put_mib": 5, "timeout_s": 30, **overrides}
        path = folder / "credentials.json"
        path.write_text(json.dumps(raw), encoding="utf-8")
        path.chmod(0o600)
        return path

    # -- crash and restart ------------------------------------------------------------------------------
    def kill9(self) -> None:
        """SIGKILL to the server's process group (a crash); returns once nothing listens on its port any more."""
        os.killpg(int(self.env["NC_PID"]), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _listening(int(self.env["NC_PORT"])):
            assert time.monotonic() < deadline, f"port {self.env['NC_PORT']} still answers 10 s after kill -9"
            time.sleep(0.05)

    def alive(self) -> bool:
        """Whether the server answers `status.php` as an installed instance."""
        try:
            answer = niquests.get(f"{self.url}/status.php", timeout=5)
        except niquests.RequestException:
            return False
        return answer.status_code == 200 and b'"installed":true' in (answer.content or b"")

    def restart(self) -> None:
        """Start again after a crash or a dead server: `stop.sh` first (it waits for the group and clears the pid
        file). The kit's `start.sh` takes a pid file whose process still exists for a running instance, and a
        killed php -S stays a zombie until pid 1 reaps it (~2 s here, longer under load), so right after a crash
        it refuses with "an instance ... is running"."""
        self.stop()
        self.start()

    def start(self) -> None:
        """Start (or restart) the instance in `workdir` on its port."""
        port = self.env.get("NC_PORT", str(_free_port()))
        done = subprocess.run([str(KIT / "start.sh"), str(self.workdir)], capture_output=True, text=True,
                              check=False, timeout=900, env={**os.environ, "NC_PORT": port})
        assert done.returncode == 0, f"start.sh failed:\n{done.stderr[-3000:]}"
        self.env = dict(line.split("=", 1) for line in done.stdout.splitlines() if line.startswith("NC_"))

    def stop(self) -> None:
        """Stop the instance (its process group only); the workdir stays."""
        subprocess.run([str(KIT / "stop.sh"), str(self.workdir)], capture_output=True, timeout=60, check=False)


def public_download(url: str, password: str | None = None) -> niquests.Response:
    """What a participant's browser does: open the link, fill in the password form if there is one, download."""
    with niquests.Session() as browser:
        page = browser.get(url, timeout=30)
        if password is not None:
            token = re.search(r'data-requesttoken="([^"]+)"', page.text or "")
            assert token and 'name="password"' in (page.text or ""), "no password form"
            form = browser.post(f"{url}/authenticate/showShare", timeout=30,
                                data={"requesttoken": token.group(1), "password": password})
            if 'name="password"' in (form.text or ""):
                return form  # the form again: refused
        return browser.get(f"{url}/download", timeout=30)


def public_dav(url: str, method: str, name: str = "", **kwargs: object) -> niquests.Response:
    """A participant's client on a public link's WebDAV (public.php/webdav, the share token as user name)."""
    base, token = url.split("/index.php/s/")
    return niquests.request(method, f"{base}/public.php/webdav/{name}", auth=(token, ""), timeout=30, **kwargs)


def public_names(url: str) -> list[str]:
    """The names in a shared folder, as the public WebDAV lists them."""
    listing = public_dav(url, "PROPFIND", headers={"Depth": "1"})
    assert listing.status_code == 207, listing.status_code
    hrefs = re.findall(r"<d:href>([^<]+)</d:href>", listing.text or "")
    return sorted(href.rstrip("/").rsplit("/", 1)[-1] for href in hrefs[1:])


@pytest.fixture(scope="session")
def nextcloud_session() -> Iterator[NextcloudServer]:
    """One real Nextcloud for the whole session, in a temporary folder removed afterwards."""
    assert (KIT / "start.sh").is_file(), f"Nextcloud test kit not found at {KIT} (set MRISHARE_SHARED)"
    if kept := os.environ.get(KEEP):  # a developer's instance, reused and left running (start.sh is idempotent)
        server = NextcloudServer(Path(kept), {"NC_PORT": os.environ.get("NC_PORT", "8089")})
        server.start()
        yield server
        return
    workdir = Path(tempfile.mkdtemp(prefix="nextcloud-"))
    server = NextcloudServer(workdir, {})
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def nextcloud(nextcloud_session: NextcloudServer) -> Iterator[NextcloudServer]:
    """The session's server, restarted first if an earlier test left it dead; policies, quota and maintenance
    mode a test switched are undone after it."""
    if not nextcloud_session.alive():
        nextcloud_session.restart()
    yield nextcloud_session
    nextcloud_session.undo()
