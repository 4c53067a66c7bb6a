"""NextcloudDestination against the real Nextcloud 29 of ../shared/nextcloud-server (issues 15 and 18).

Every test gets a fresh `remote_path`, so tests do not see each other's files; policies a test switches on
are undone by the `nextcloud` fixture. The stand-in (test_nextcloud.py) stays for what a real server cannot
be made to do on cue: connection resets and 5xx in the middle of a chunk.
"""

from __future__ import annotations

import hashlib
import os
from datetime import date, timedelta
from pathlib import Path

import niquests
import pytest
from nextcloud_server import XDIST_GROUP, NextcloudServer, public_dav, public_download, public_names

from tui.core.credentials import load_credentials
from tui.core.delivery.nextcloud import NextcloudDestination
from tui.core.errors import MrishareError
from tui.core.events import drain

pytestmark = [XDIST_GROUP, pytest.mark.slow]
MIB = 1 << 20
SHARE_PW = "Correct-Horse-Battery-42"


def make_dest(server: NextcloudServer, tmp_path: Path, **overrides: object) -> NextcloudDestination:
    creds = load_credentials(server.credentials(tmp_path, **overrides))
    return NextcloudDestination(creds, attempts=3, backoff_s=0.05)


@pytest.fixture
def dest(nextcloud: NextcloudServer, tmp_path: Path):
    d = make_dest(nextcloud, tmp_path)
    yield d
    d.close()


def uploaded(dest: NextcloudDestination, tmp_path: Path, rel: str, size: int = 5000) -> Path:
    local = tmp_path / rel.replace("/", "_")
    local.write_bytes(os.urandom(size))
    drain(dest.upload(local, rel))
    return local


def test_upload_share_and_public_download_match(nextcloud: NextcloudServer, dest, tmp_path: Path) -> None:
    local = uploaded(dest, tmp_path, "a1/sub-01.zip", 300_000)
    info = dest.share("a1/sub-01.zip", 3, "row-a1")
    assert info.expires == date.today() + timedelta(days=4) and not info.has_password
    assert info.url.startswith(f"{nextcloud.url}/index.php/s/")
    got = public_download(info.url)
    assert got.status_code == 200 and hashlib.sha256(got.content).digest() == hashlib.sha256(
        local.read_bytes()).digest()
    with pytest.raises(MrishareError, match="refusing to overwrite"):
        drain(dest.upload(local, "a1/sub-01.zip"))


def test_chunked_upload_lands_whole(nextcloud: NextcloudServer, dest, tmp_path: Path) -> None:
    local = uploaded(dest, tmp_path, "c1/sub-01.zip", 11 * MIB + 7)
    assert nextcloud.files(dest.root) == ["c1/sub-01.zip"]
    got = nextcloud.dav("GET", f"files/{nextcloud.user}/{dest.root}/c1/sub-01.zip")
    assert got.content == local.read_bytes()


def test_password_form_refuses_wrong_and_accepts_right(dest, tmp_path: Path) -> None:
    local = uploaded(dest, tmp_path, "p1/sub-01.zip")
    info = dest.share("p1/sub-01.zip", 3, "row-p1", password=SHARE_PW)
    assert info.has_password
    wrong = public_download(info.url, "wrong-password-1")
    assert "The password is wrong or expired" in (wrong.text or "") and wrong.content != local.read_bytes()
    right = public_download(info.url, SHARE_PW)
    assert right.status_code == 200 and right.content == local.read_bytes()


def test_revoke_gives_404_and_leaves_nothing_in_the_trash(nextcloud: NextcloudServer, dest, tmp_path: Path) -> None:
    uploaded(dest, tmp_path, "r1/sub-01.zip")
    info = dest.share("r1/sub-01.zip", 3, "row-r1")
    trash_before = nextcloud.trash()
    dest.revoke(info.share_id, "r1/sub-01.zip")
    assert niquests.get(info.url, timeout=30).status_code == 404
    assert nextcloud.files(dest.root) == [] and dest.find_share(info.share_id) is None
    assert nextcloud.trash() == trash_before  # neither the file nor its folder sits in the trash bin


def test_extend_and_shorten_show_on_the_server(nextcloud: NextcloudServer, dest, tmp_path: Path) -> None:
    uploaded(dest, tmp_path, "e1/sub-01.zip")
    info = dest.share("e1/sub-01.zip", 3, "row-e1")
    for days in (20, 2):
        dest.extend(info.share_id, days)
        on_server = dest.find_share(info.share_id)  # OCS GET of that share
        assert on_server is not None and on_server.expires == date.today() + timedelta(days=days + 1)
        [row] = [s for s in nextcloud.shares() if s["id"] == info.share_id]
        assert row["expiration"].startswith((date.today() + timedelta(days=days + 1)).isoformat())


def test_expired_share_is_gone_and_cleanup_removes_its_file(nextcloud: NextcloudServer, dest, tmp_path: Path) -> None:
    uploaded(dest, tmp_path, "x1/sub-01.zip")
    uploaded(dest, tmp_path, "x2/sub-01.zip")
    old = dest.share("x1/sub-01.zip", 3, "row-x1")
    live = dest.share("x2/sub-01.zip", 3, "row-x2")
    nextcloud.sql(f"UPDATE oc_share SET expiration='2000-01-01 00:00:00' WHERE id={old.share_id}")
    assert dest.find_share(old.share_id) is None and dest.find_share(live.share_id) == live
    # the server dropped the expired share; its file is younger than the grace period, so age it
    nextcloud.sql(f"UPDATE oc_filecache SET mtime=mtime-20*86400 WHERE path LIKE 'files/{dest.root}/x1/%'")
    assert dest.cleanup_expired() == ["x1/sub-01.zip"]
    assert nextcloud.files(dest.root) == ["x2/sub-01.zip"]


def test_policy_reads_enforced_password_expiry_and_length(nextcloud: NextcloudServer, dest) -> None:
    free = dest.policy()
    assert (free.password_required, free.max_expire_days, free.password_min_length) == (False, None, 10)
    nextcloud.app_setting("shareapi_enforce_links_password", "yes")
    nextcloud.enforce_expiry(7)
    policy = dest.policy()
    assert policy.password_required and policy.max_expire_days == 6
    assert policy.expire_days(14) == 6 and policy.expire_days(3) == 3


def test_clamped_expiry_is_accepted_by_an_enforcing_server(nextcloud: NextcloudServer, dest, tmp_path: Path) -> None:
    uploaded(dest, tmp_path, "m1/sub-01.zip")
    nextcloud.enforce_expiry(7)
    with pytest.raises(MrishareError, match="link refused: Cannot set expiration date more than 7 days"):
        dest.share("m1/sub-01.zip", 14, "row-m1")  # what happened before the policy was read
    info = dest.share("m1/sub-01.zip", dest.policy().expire_days(14), "row-m1")
    assert info.expires == date.today() + timedelta(days=7)


def test_enforced_password_refuses_a_link_without_one(nextcloud: NextcloudServer, dest, tmp_path: Path) -> None:
    uploaded(dest, tmp_path, "q1/sub-01.zip")
    nextcloud.app_setting("shareapi_enforce_links_password", "yes")
    with pytest.raises(MrishareError, match="Passwords are enforced"):
        dest.share("q1/sub-01.zip", 3, "row-q1")
    assert dest.share("q1/sub-01.zip", 3, "row-q1", password=SHARE_PW).has_password


def test_quota_too_small_is_clear_before_any_byte(nextcloud: NextcloudServer, dest, tmp_path: Path) -> None:
    nextcloud.quota("1 MB")
    local = tmp_path / "big.zip"
    local.write_bytes(os.urandom(2 * MIB))
    with pytest.raises(MrishareError, match="not enough space on Nextcloud"):
        drain(dest.upload(local, "b1/sub-01.zip"))
    assert nextcloud.files(dest.root) == []


def test_maintenance_mode_gives_up_with_a_clear_error(nextcloud: NextcloudServer, dest) -> None:
    nextcloud.maintenance()
    with pytest.raises(MrishareError, match=r"maintenance mode \(gave up after 3 tries\)"):
        dest.policy()


def test_wrong_app_password_is_a_login_error_without_the_secret(nextcloud: NextcloudServer, tmp_path: Path) -> None:
    wrong = "wrong-app-password-0123456789abcdef"
    d = make_dest(nextcloud, tmp_path, password=wrong)
    with pytest.raises(MrishareError, match="login refused: check username and app password") as caught:
        d.policy()
    assert wrong not in str(caught.value)
    assert {k: ok for k, ok, _ in d.check()} == {"login": False}


def test_kill_9_during_chunked_upload_then_resume_gives_one_file(nextcloud: NextcloudServer, tmp_path: Path) -> None:
    """The server crashes (SIGKILL to its process group) mid-upload; after a restart the upload resumes from the
    chunks the server kept, and one file with one link results."""
    from tui.core.events import StepNote, StepProgress

    d = make_dest(nextcloud, tmp_path, timeout_s=10)
    d.attempts = 2
    local = tmp_path / "big.zip"
    local.write_bytes(os.urandom(40 * MIB))
    killed = False
    with pytest.raises(MrishareError, match="upload"):
        for event in d.upload(local, "k9/sub-01.zip"):
            if not killed and isinstance(event, StepProgress) and event.done >= 22 * MIB:
                nextcloud.kill9()
                killed = True
    assert killed
    nextcloud.restart()
    notes: list[str] = []
    drain(d.upload(local, "k9/sub-01.zip"), lambda e: notes.append(e.message) if isinstance(e, StepNote) else None)
    assert any(n.startswith("resuming: ") and not n.startswith("resuming: 0 ") for n in notes), notes
    info = d.share("k9/sub-01.zip", 3, "row-k9")
    assert nextcloud.files(d.root) == ["k9/sub-01.zip"]
    assert [s["token"] for s in nextcloud.shares() if s["token"] in info.url] == [info.url.rsplit("/", 1)[1]]
    assert public_download(info.url).content == local.read_bytes()
    d.close()


def test_a_folder_share_reaches_zip_and_page_and_revoke_removes_the_folder(
        nextcloud: NextcloudServer, dest, tmp_path: Path) -> None:
    package = uploaded(dest, tmp_path, "f1/sub-01.zip", 300_000)
    page = uploaded(dest, tmp_path, "f1/sub-01_oeffnen_open.html", 70_000)
    info = dest.share("f1", 3, "row-f1")  # the share's folder, read-only
    assert info.remote_path == "f1"
    assert public_names(info.url) == ["sub-01.zip", "sub-01_oeffnen_open.html"]
    for local in (package, page):
        got = public_dav(info.url, "GET", local.name.removeprefix("f1_"))
        assert got.status_code == 200 and got.content == local.read_bytes()
    assert public_dav(info.url, "PUT", "more.txt", data=b"x").status_code in (403, 405)  # read-only
    extended = dest.extend(info.share_id, 20)  # extend acts on the folder's link like on a file's
    assert extended.remote_path == "f1" and dest.find_share(info.share_id) == extended
    trash_before = nextcloud.trash()
    dest.revoke(info.share_id, info.remote_path)
    assert niquests.get(info.url, timeout=30).status_code == 404
    assert nextcloud.files(dest.root) == [] and not dest.exists("f1") and nextcloud.trash() == trash_before


def test_cleanup_keeps_a_live_folder_share_and_removes_an_expired_one(
        nextcloud: NextcloudServer, dest, tmp_path: Path) -> None:
    for folder in ("g1", "g2"):
        uploaded(dest, tmp_path, f"{folder}/sub-01.zip")
        uploaded(dest, tmp_path, f"{folder}/sub-01_oeffnen_open.html")
    old, live = dest.share("g1", 3, "row-g1"), dest.share("g2", 3, "row-g2")
    nextcloud.sql(f"UPDATE oc_share SET expiration='2000-01-01 00:00:00' WHERE id={old.share_id}")
    nextcloud.sql(f"UPDATE oc_filecache SET mtime=mtime-20*86400 WHERE path LIKE 'files/{dest.root}/%'")
    assert dest.find_share(old.share_id) is None
    assert dest.cleanup_expired() == ["g1/sub-01.zip", "g1/sub-01_oeffnen_open.html"]
    assert nextcloud.files(dest.root) == ["g2/sub-01.zip", "g2/sub-01_oeffnen_open.html"]
    assert not dest.exists("g1") and dest.find_share(live.share_id) == live
