"""A throwaway Orthanc (Debian's `/usr/sbin/Orthanc`) for tests and benchmarks, reached only on 127.0.0.1.

Orthanc has no bind-address option and listens on all interfaces, so the config turns remote
access off (`RemoteAccessAllowed: false`) and everything talks to it via 127.0.0.1. Storage, index
and log live in a temporary folder; `modalities` become `DicomModalities` (AE, host, port), which
Orthanc needs before it answers C-FIND/C-GET/C-MOVE from an AE or moves images to it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

BINARY = shutil.which("Orthanc") or "/usr/sbin/Orthanc"


def free_port() -> int:
    """A TCP port free on all interfaces (Orthanc binds to all of them)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


class Orthanc:
    """Start with `with Orthanc("ORTHANCA", {"MRISHARE": 11113}) as pacs:`; stopped on exit.

    `env` adds environment variables, e.g. `{"TCP_NODELAY": "1"}` (read by dcmtk inside Orthanc).
    """

    def __init__(self, aet: str = "ORTHANC", modalities: dict[str, int] | None = None,
                 storage: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.aet = aet
        self.env = env
        self.modalities = modalities or {}
        self._storage = storage
        self.dicom_port = 0
        self.http_port = 0
        self.folder: Path | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 20.0) -> None:
        """Write the config, start Orthanc and wait until its REST API answers."""
        self._tmp = tempfile.TemporaryDirectory(prefix="orthanc-", dir=self._storage)
        self.folder = Path(self._tmp.name)
        self.dicom_port, self.http_port = free_port(), free_port()
        config = {
            "Name": self.aet, "DicomAet": self.aet, "DicomPort": self.dicom_port, "HttpPort": self.http_port,
            "StorageDirectory": str(self.folder / "db"), "IndexDirectory": str(self.folder / "db"),
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "Plugins": [],
            "DicomCheckCalledAet": True, "DicomCheckModalityHost": False,
            "DicomModalities": {aet.lower(): [aet, "127.0.0.1", port] for aet, port in self.modalities.items()},
            "SaveJobs": False, "ConcurrentJobs": 1, "HttpThreadsCount": 4, "DicomThreadsCount": 2,
            "StorageCompression": False, "DicomScpTimeout": 30, "HttpTimeout": 30,
        }
        (self.folder / "orthanc.json").write_text(json.dumps(config))
        with open(self.folder / "orthanc.log", "wb") as log:
            self._process = subprocess.Popen([BINARY, str(self.folder / "orthanc.json")], stdout=log,
                                             stderr=subprocess.STDOUT, cwd=self.folder,
                                             env={**os.environ, **self.env} if self.env else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                self.rest("/system")
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        tail = (self.folder / "orthanc.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"Orthanc did not start:\n{tail}")

    def stop(self) -> None:
        """Kill Orthanc and delete its folder (a throwaway database needs no clean shutdown, which takes ~3 s)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def rest(self, path: str, data: bytes | None = None, method: str | None = None) -> Any:
        """Call the REST API on 127.0.0.1 and decode its JSON answer."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def upload(self, files: list[Path]) -> None:
        """Store files through REST (independent of the DICOM code under test)."""
        for path in files:
            self.rest("/instances", data=path.read_bytes(), method="POST")

    def clear(self) -> None:
        """Delete every patient."""
        for patient in self.rest("/patients"):
            self.rest(f"/patients/{patient}", method="DELETE")

    def instance_tags(self) -> list[dict[str, Any]]:
        """`simplified-tags` of every stored instance."""
        return [self.rest(f"/instances/{i}/simplified-tags") for i in self.rest("/instances")]
