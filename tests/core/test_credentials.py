"""credentials.json: lookup order, validation, private mode, secrets out of repr, no .env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tui.core.config import config_dir
from tui.core.credentials import (
    ENV_VAR,
    MRICRON_NOTE,
    VIEWER_BUNDLE_NOTE,
    credentials_path,
    load_credentials,
    parse_credentials,
)
from tui.core.errors import MrishareError

REPO = Path(__file__).resolve().parents[2]
SEED = {  # the seed project's fields, unchanged
    "username": "lab-share",
    "password": "Secret-App-Pass-12345",
    "remote_path": "MRI-Uploads",
    "expiration_days": 14,
    "include_mricron": True,
    "nextcloud_baseurl": "https://cloud.example.org",
}


def write(path: Path, data: dict, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    path.chmod(mode)
    return path


def test_seed_file_loads_as_nextcloud_destination(tmp_path: Path) -> None:
    creds = load_credentials(write(tmp_path / "c.json", SEED))
    assert creds.destination == "nextcloud"
    assert (creds.username, creds.remote_path, creds.expiration_days) == ("lab-share", "MRI-Uploads", 14)
    assert creds.chunk_mib == 100 and creds.ca_bundle is None
    # the seed's MRIcron option now means the browser viewer, and the operator is told so in one line
    assert creds.include_viewer is True and creds.notes == (MRICRON_NOTE,) and "\n" not in MRICRON_NOTE


def test_viewer_is_on_by_default_and_can_be_turned_off(tmp_path: Path) -> None:
    plain = {k: v for k, v in SEED.items() if k != "include_mricron"}
    assert load_credentials(write(tmp_path / "a.json", plain)).include_viewer is True
    off = load_credentials(write(tmp_path / "b.json", {**plain, "include_viewer": False}))
    assert off.include_viewer is False and off.notes == ()
    assert load_credentials(write(tmp_path / "c.json", {**SEED, "include_mricron": False})).notes == ()


def test_a_viewer_bundle_is_ignored_with_one_line(tmp_path: Path) -> None:
    bundled = load_credentials(write(tmp_path / "a.json", {**SEED, "viewer_bundle": "C:/Lab/MRIcron"}))
    assert bundled.notes == (MRICRON_NOTE, VIEWER_BUNDLE_NOTE) and "\n" not in VIEWER_BUNDLE_NOTE
    assert not hasattr(bundled, "viewer_bundle")  # nothing downstream can use it by mistake
    assert load_credentials(write(tmp_path / "b.json", {**SEED, "viewer_bundle": ""})).notes == (MRICRON_NOTE,)
    with pytest.raises(MrishareError, match="viewer_bundle must be a path string"):
        load_credentials(write(tmp_path / "c.json", {**SEED, "viewer_bundle": 3}))


def test_password_never_in_repr(tmp_path: Path) -> None:
    creds = load_credentials(write(tmp_path / "c.json", SEED))
    assert "Secret-App-Pass" not in repr(creds) and "Secret-App-Pass" not in str(creds)
    with pytest.raises(AttributeError):
        creds.password = "x"  # type: ignore[misc]  # frozen


def test_example_file_is_valid_and_holds_no_secret() -> None:
    raw = json.loads((REPO / "credentials.example.json").read_text())
    creds = parse_credentials(raw, Path("credentials.example.json"))
    assert creds.destination == "nextcloud" and creds.nextcloud_baseurl.startswith("https://")
    assert set(raw["password"]) <= {"x", "-"}


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = write(config_dir() / "credentials.json", {**SEED, "username": "from-config-dir"})
    from_env = write(tmp_path / "env.json", {**SEED, "username": "from-env"})
    explicit = write(tmp_path / "cli.json", {**SEED, "username": "from-cli"})
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert credentials_path() == default and load_credentials().username == "from-config-dir"
    monkeypatch.setenv(ENV_VAR, str(from_env))
    assert load_credentials().username == "from-env"
    assert load_credentials(explicit).username == "from-cli"


def test_missing_file_names_the_place(tmp_path: Path) -> None:
    with pytest.raises(MrishareError, match="no credentials file") as err:
        load_credentials(tmp_path / "nope.json")
    assert err.value.where == str(tmp_path / "nope.json")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_group_or_other_readable_file_is_refused_with_fix(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path / "c.json", SEED, mode)
    with pytest.raises(MrishareError, match=f"chmod 600 {path}"):
        load_credentials(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pasword": "typo"}, "unknown field"),
        ({"expiration_days": 0}, "between 1 and 3650"),
        ({"expiration_days": "14"}, "whole number"),
        ({"include_mricron": "yes"}, "true or false"),
        ({"nextcloud_baseurl": "http://cloud.example.org"}, "https://"),
        ({"nextcloud_baseurl": "https://"}, "look like"),
        ({"password": ""}, "password is required"),
        ({"destination": "ftp"}, "destination must be"),
        ({"ca_bundle": "/nonexistent/ca.pem"}, "ca_bundle"),
        ({"remote_path": "a/../b"}, "'..'"),
        ({"chunk_mib": 1}, "between 5"),
    ],
)
def test_invalid_values_are_refused(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(MrishareError, match=message):
        load_credentials(write(tmp_path / "c.json", {**SEED, **change}))


def test_plain_http_allowed_only_for_loopback(tmp_path: Path) -> None:
    creds = load_credentials(write(tmp_path / "c.json", {**SEED, "nextcloud_baseurl": "http://127.0.0.1:8080"}))
    assert creds.nextcloud_baseurl == "http://127.0.0.1:8080"


def test_folder_destination_needs_no_login(tmp_path: Path) -> None:
    creds = load_credentials(write(tmp_path / "c.json", {"destination": f"folder:{tmp_path}", "_note": "x"}))
    assert creds.destination == f"folder:{tmp_path}" and creds.username == ""


def test_not_json_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{username: lab")
    path.chmod(0o600)
    with pytest.raises(MrishareError, match="not readable as JSON"):
        load_credentials(path)


def test_dotenv_in_working_directory_is_not_used(tmp_path: Path) -> None:
    """A .env next to the operator must not become credentials or switch TLS checks off.

    nc-py-api 0.30.3 calls load_dotenv() on import (the control below shows it), which is one reason
    tui.core.delivery.nextcloud does not use it.
    """
    (tmp_path / ".env").write_text("NC_AUTH_USER=from-dotenv\nNPA_NC_CERT=False\nMRISHARE_CREDENTIALS=/tmp/x\n")
    (tmp_path / "credentials.json").write_text(json.dumps({**SEED, "username": "from-file"}))
    (tmp_path / "credentials.json").chmod(0o600)
    code = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path;"
        "import tui.core.delivery.nextcloud, tui.core.delivery.destinations;"
        "from tui.core.credentials import load_credentials;"
        "c = load_credentials(Path('credentials.json'));"
        "print(c.username, os.environ.get('NC_AUTH_USER'), os.environ.get('MRISHARE_CREDENTIALS'),"
        " 'dotenv' in sys.modules, 'nc_py_api' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NC_AUTH_USER", "NPA_NC_CERT", ENV_VAR)}
    # `-c` counts as interactive for python-dotenv, which then searches the working directory
    out = subprocess.run([sys.executable, "-c", code, str(REPO)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["from-file", "None", "None", "False", "False"]
    control = subprocess.run([sys.executable, "-c", "import os, nc_py_api; print(os.environ.get('NC_AUTH_USER'))"],
                             cwd=tmp_path, env=env, capture_output=True, text=True)
    if control.returncode == 0:  # nc-py-api installed: proves the test would catch such a leak
        assert control.stdout.strip() == "from-dotenv"
