"""Local state: private files (0600, atomic) and the site secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tui.core.config import check_private, config_dir, data_dir, site_secret, write_private
from tui.core.errors import MrishareError


def test_home_override_puts_everything_in_one_folder(mrishare_home: Path) -> None:
    assert config_dir() == mrishare_home / "config" and data_dir() == mrishare_home / "data"


def test_write_private_is_0600_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "secret.json"
    write_private(target, b"one")
    write_private(target, b"two")
    assert target.read_bytes() == b"two" and oct(target.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in target.parent.iterdir()] == ["secret.json"]


def test_check_private_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text("{}")
    os.chmod(path, 0o644)
    with pytest.raises(MrishareError, match=f"chmod 600 {path}"):
        check_private(path)
    os.chmod(path, 0o600)
    check_private(path)


def test_site_secret_is_made_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "site-secret"
    first = site_secret(path)
    assert len(first) == 32 and site_secret(path) == first
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    os.chmod(path, 0o640)
    with pytest.raises(MrishareError, match="group/others"):
        site_secret(path)
    os.chmod(path, 0o600)
    path.write_text("not hex\n")
    with pytest.raises(MrishareError, match="not hex"):
        site_secret(path)
