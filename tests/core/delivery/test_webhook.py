"""Starting a processing job by webhook (issue 14): job.json POSTed over verified TLS with a bearer token.

The job goes to the real Nextcloud; the webhook receiver is a small HTTPS server in this process (a lab's job
starter), with a self-signed certificate that only `ca_bundle` makes trusted.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from nextcloud_server import XDIST_GROUP, NextcloudServer
from test_nextcloud import needs_openssl, self_signed

from tui.core.credentials import load_credentials
from tui.core.delivery.jobs import new_job_id
from tui.core.delivery.processing import ProcessingDestination, job_files
from tui.core.errors import MrishareError
from tui.core.events import StepNote, drain

pytestmark = [XDIST_GROUP, pytest.mark.slow, needs_openssl]
TOKEN = "hook-token-7f3a9c"


class Receiver(BaseHTTPRequestHandler):
    """Records each POST; answers 202 for the right bearer token, 401 otherwise."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers.get("Authorization"), body))  # type: ignore[attr-defined]
        self.send_response(202 if self.headers.get("Authorization") == f"Bearer {TOKEN}" else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path, list[tuple[str, str, bytes]]]]:
    cert, key = self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received = []  # type: ignore[attr-defined]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/start", cert, server.received  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def submit(nextcloud: NextcloudServer, tmp_path: Path, shared_data: Path, **creds: object) -> tuple[str, list[str]]:
    path = nextcloud.credentials(tmp_path, processing_path=f"proc-{new_job_id()[:8]}", **creds)
    target = ProcessingDestination(load_credentials(path), "atlas")
    target.policy()
    t1 = shared_data / "head-mri/siemens_prisma_xa30_mprage_2mm/nifti/anat-T1w_acq-tfl_dicom2nifti.nii.gz"
    job, files = job_files(new_job_id(), "atlas", "AB12CD", [(t1, "t1")])
    notes: list[str] = []
    drain(target.submit(job, files), lambda e: notes.append(e.message) if isinstance(e, StepNote) else None)
    assert target.folder.state(job.id) == "queued"  # in the inbox whatever the webhook said
    target.close()
    return job.to_json(), notes


def test_webhook_posts_job_json_with_the_bearer_token(nextcloud: NextcloudServer, tmp_path: Path,
                                                      shared_data: Path, receiver) -> None:
    url, cert, received = receiver
    job_json, notes = submit(nextcloud, tmp_path, shared_data, webhook_url=url, webhook_token=TOKEN,
                             ca_bundle=str(cert))
    assert received == [("/start", f"Bearer {TOKEN}", job_json.encode())]
    assert json.loads(job_json)["pipeline"] == "atlas"
    assert notes == ["webhook started the job"]


def test_untrusted_certificate_is_refused_and_the_job_waits(nextcloud: NextcloudServer, tmp_path: Path,
                                                            shared_data: Path, receiver) -> None:
    url, _, received = receiver
    _, notes = submit(nextcloud, tmp_path, shared_data, webhook_url=url, webhook_token=TOKEN)
    assert received == []  # the TLS handshake failed before anything was sent
    assert notes == [f"{url.split('/')[2]}: webhook: TLS certificate not trusted (set ca_bundle for a lab CA); "
                     "the job waits in the inbox for a polling worker"]
    assert TOKEN not in " ".join(notes)


def test_a_refused_token_is_a_warning_without_the_token(nextcloud: NextcloudServer, tmp_path: Path,
                                                        shared_data: Path, receiver) -> None:
    url, cert, received = receiver
    _, notes = submit(nextcloud, tmp_path, shared_data, webhook_url=url, webhook_token="wrong-token-1234",
                      ca_bundle=str(cert))
    assert len(received) == 1 and "webhook answered 401 (token refused?)" in notes[0]
    assert "wrong-token-1234" not in notes[0]


@pytest.mark.parametrize(("fields", "message"), [
    ({"webhook_url": "http://example.org/hook", "webhook_token": "t"}, "webhook_url must start with https://"),
    ({"webhook_url": "https://example.org/hook"}, "webhook_token is required"),
])
def test_webhook_settings_are_checked(tmp_path: Path, fields: dict[str, str], message: str) -> None:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"destination": "folder:/tmp/x", **fields}))
    path.chmod(0o600)
    with pytest.raises(MrishareError, match=message):
        load_credentials(path)
    assert repr(load_credentials(_valid(tmp_path))).count("secret-token") == 0


def _valid(tmp_path: Path) -> Path:
    path = tmp_path / "ok.json"
    path.write_text(json.dumps({"destination": "folder:/tmp/x", "webhook_url": "https://example.org/h",
                                "webhook_token": "secret-token"}))
    path.chmod(0o600)
    return path
