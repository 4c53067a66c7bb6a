"""Saved defaults: round trip through settings.json, refusals naming the file, flags over file over credentials."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from tui.core.config import config_dir, data_dir
from tui.core.errors import MrishareError
from tui.core.settings import UserSettings, load_settings, save_settings, settings_path


def test_missing_file_gives_the_built_in_defaults() -> None:
    assert not settings_path().exists()
    assert load_settings() == UserSettings()


def test_round_trip_every_field_mode_0600(tmp_path: Path) -> None:
    chosen = UserSettings(destination=f"folder:{tmp_path}", expiry_days=30, encryption="aes", preset="research",
                          options=frozenset({"clean_desc", "rtn_pat_chars"}), deface_mode="deface",
                          modalities=frozenset({"MR", "CT"}), pseudonym="adit:lab7", engine="dicom2nifti",
                          language="de", ledger=tmp_path / "list.xlsx",
                          protocol_pages=("Patient Protocol", "Scout Report"))
    path = save_settings(chosen)
    assert path == config_dir() / "settings.json" and path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["modalities"] == ["CT", "MR"]
    assert json.loads(path.read_text())["protocol_pages"] == ["Patient Protocol", "Scout Report"]
    assert load_settings() == chosen
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []  # no temp file left


@pytest.mark.parametrize(("content", "reason"), [
    ({"expiry": 30}, "unknown setting 'expiry'"),
    ({"expiry_days": 0}, "expiry_days must be a whole number"),
    ({"expiry_days": "30"}, "expiry_days must be a whole number"),
    ({"encryption": "rot13"}, "encryption must be one of aes, zipcrypto"),
    ({"preset": "everything"}, "preset must be one of"),
    ({"options": ["no_such_option"]}, "unknown Annex E option"),
    ({"options": "clean_desc"}, "options must be a list"),
    ({"modalities": ["mr"]}, "modalities must be"),
    ({"pseudonym": "random"}, "unknown pseudonym scheme"),
    ({"pseudonym": "adit-upload:" + "d" * 65}, "at most 64 are allowed"),
    ({"protocol_pages": "Patient Protocol"}, "protocol_pages must be a list"),
    ({"protocol_pages": ["Patient Protocol", " "]}, "protocol_pages must be a list of series descriptions"),
    ({"destination": "s3:bucket"}, "destination must be"),
    ({"language": "fr"}, "language must be one of en, de"),
    ({"modalities": [["MR"]]}, "wrong type"),
    ([1, 2], "must hold one JSON object"),
])
def test_bad_content_is_refused_in_one_line_naming_the_file(content: object, reason: str) -> None:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    with pytest.raises(MrishareError) as caught:
        load_settings()
    message = str(caught.value)
    assert reason in message and message.startswith(str(path)) and "\n" not in message


def test_broken_json_and_comment_keys() -> None:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"_note": "set by the lab manager", "expiry_days": 21}')
    assert load_settings().expiry_days == 21
    path.write_text('{"expiry_days": ')
    with pytest.raises(MrishareError, match="not readable as JSON"):
        load_settings()


def _flags(**given: object) -> argparse.Namespace:
    names = ("dest", "expiry_days", "encryption", "preset", "option", "deface", "modalities", "pseudonym", "engine",
             "ledger")
    return argparse.Namespace(**{name: given.get(name) for name in names})


def test_flags_override_the_file_and_the_file_overrides_credentials(tmp_path: Path) -> None:
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps({"destination": f"folder:{tmp_path / 'from-creds'}", "expiration_days": 9}))
    os.chmod(creds, 0o600)
    saved = UserSettings(expiry_days=30, modalities=frozenset({"CT"}))
    run = saved.with_flags(_flags(preset="research", modalities="mr, ct", option=["clean_desc"]))
    assert (run.preset, run.modalities, run.options, run.expiry_days) == (
        "research", frozenset({"MR", "CT"}), frozenset({"clean_desc"}), 30)
    settings = run.pipeline_settings(creds)
    assert settings.expiry_days == 30 and settings.destination == f"folder:{tmp_path / 'from-creds'}"
    assert UserSettings().pipeline_settings(creds).expiry_days == 9
    assert saved.with_flags(_flags(expiry_days=3)).pipeline_settings(creds).expiry_days == 3


def test_without_credentials_a_local_outbox_and_14_days() -> None:
    settings = UserSettings().pipeline_settings()
    assert settings.destination == f"folder:{data_dir() / 'outbox'}" and settings.expiry_days == 14
    assert (data_dir() / "outbox").is_dir()
    with pytest.raises(MrishareError, match="credentials"):
        UserSettings(destination="nextcloud").pipeline_settings()
