"""The user's saved defaults (`settings.json` in the config folder): what a run uses unless a flag says otherwise.

Precedence: command-line flag > settings.json > credentials file (destination, expiry) > built-in default.
The file holds no secrets (those stay in credentials.json) but is still written 0600, atomically.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from tui.core.config import config_dir, data_dir, write_private
from tui.core.credentials import Credentials, credentials_path, load_credentials
from tui.core.deid.pseudonym import parse_scheme
from tui.core.dicom import annex_e
from tui.core.errors import MrishareError
from tui.core.presets import DEFACE_MODES, ENCRYPTIONS, ENGINES, PRESETS, PROTOCOL_PAGES
from tui.core.run_settings import PipelineSettings
from tui.core.wordlists import LANGUAGES

FILE_NAME = "settings.json"

# settings field -> attribute of the parsed command line (`mrishare batch/share/app` flags)
FLAGS = {"destination": "dest", "expiry_days": "expiry_days", "encryption": "encryption", "preset": "preset",
         "options": "option", "deface_mode": "deface", "modalities": "modalities", "pseudonym": "pseudonym",
         "engine": "engine", "ledger": "ledger"}


@dataclass(frozen=True)
class UserSettings:
    """Saved defaults for runs; validated on construction (MrishareError naming the setting)."""

    destination: str = ""
    """`folder:PATH`, `nextcloud` or `dicom-node:NAME`; empty: the credentials file's destination, else a local
    outbox."""
    expiry_days: int | None = None
    """Full days a link works; None: the credentials file's `expiration_days`, else 14."""
    encryption: str = "aes"
    preset: str = "participant-copy"
    options: frozenset[str] | None = None
    """Annex E options; None takes the preset's."""
    deface_mode: str | None = None
    """reface | deface | off; None takes the preset's."""
    modalities: frozenset[str] = frozenset({"MR"})
    protocol_pages: tuple[str, ...] = PROTOCOL_PAGES
    """SeriesDescriptions of scanner protocol/report pages: always quarantined (case-insensitive)."""
    pseudonym: str = "keyed"
    engine: str = "dcm2niix"
    language: str = "en"
    """Language of the passphrase words."""
    ledger: Path | None = None
    """The share list; None: `share-list.xlsx` in the data folder."""
    lab_name: str = ""
    """Who sends the package, as the participant knows the lab (README, index.html); empty: left out."""
    lab_contact: str = ""
    """How the participant reaches the lab with questions (e-mail or phone); empty: left out."""
    study_name: str = ""
    """The study the images come from, as the participant knows it; empty: left out."""

    def __post_init__(self) -> None:
        if not isinstance(self.destination, str) or (self.destination and self.destination != "nextcloud" and not (
                self.destination.startswith(("folder:", "dicom-node:", "processing:"))
                and self.destination.partition(":")[2])):
            raise MrishareError("destination must be 'folder:PATH', 'nextcloud', 'dicom-node:NAME' or "
                                "'processing:PIPELINE'")
        if self.expiry_days is not None and (type(self.expiry_days) is not int or self.expiry_days < 1):
            raise MrishareError("expiry_days must be a whole number of at least 1")
        _one_of("encryption", self.encryption, ENCRYPTIONS)
        _one_of("preset", self.preset, tuple(PRESETS))
        _one_of("engine", self.engine, ENGINES)
        _one_of("language", self.language, LANGUAGES)
        if self.deface_mode is not None:
            _one_of("deface_mode", self.deface_mode, DEFACE_MODES)
        if self.options is not None:
            annex_e.validate_options(self.options)
        if not self.modalities or not all(isinstance(m, str) and m.isalnum() and m.isupper() for m in self.modalities):
            raise MrishareError("modalities must be a non-empty list of DICOM modality codes such as MR, CT")
        if not isinstance(self.protocol_pages, tuple) or not all(
                isinstance(p, str) and p.strip() and len(p) <= 64 for p in self.protocol_pages):
            raise MrishareError("protocol_pages must be a list of series descriptions (1-64 characters each)")
        if not isinstance(self.pseudonym, str):
            raise MrishareError("pseudonym must be text: "
                                "keyed | adit:SEED | adit-upload:DEPARTMENT | csv:FILE | fixed:VALUE")
        parse_scheme(self.pseudonym)
        for name in ("lab_name", "lab_contact", "study_name"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > 200 or any(c in value for c in "\r\n"):
                raise MrishareError(f"{name} must be one line of text (at most 200 characters)")

    @classmethod
    def from_pipeline(cls, settings: PipelineSettings, ledger: Path | None = None) -> UserSettings:
        """The defaults that reproduce `settings` (as edited on the settings screen)."""
        return cls(destination=settings.destination, expiry_days=settings.expiry_days,
                   encryption=settings.encryption, preset=settings.preset, options=settings.options,
                   deface_mode=settings.deface_mode, modalities=frozenset(settings.modalities),
                   protocol_pages=settings.protocol_pages, pseudonym=settings.pseudonym, engine=settings.engine,
                   language=settings.language, ledger=ledger,
                   lab_name=settings.lab_name, lab_contact=settings.lab_contact, study_name=settings.study_name)

    def with_flags(self, args: object) -> UserSettings:
        """These defaults overridden by every command-line flag that was given (not None)."""
        changes: dict[str, Any] = {}
        for name, flag in FLAGS.items():
            value = getattr(args, flag, None)
            if value is None:
                continue
            if name == "options":
                value = annex_e.validate_options(value)
            elif name == "modalities":
                value = frozenset(m.strip().upper() for m in str(value).split(",") if m.strip())
            elif name == "ledger":
                value = Path(value)
            changes[name] = value
        return replace(self, **changes)

    def pipeline_settings(self, credentials_path: Path | None = None, keep_work: bool = False) -> PipelineSettings:
        """Settings for a run; the credentials file fills destination and expiry when these leave them open."""
        credentials = self._credentials(credentials_path)
        dest = self.destination or (credentials.destination if credentials else default_outbox())
        if dest.startswith("folder:"):
            from tui.core.delivery.folder import make_folder

            make_folder(Path(dest.removeprefix("folder:")).expanduser())
        expiry = self.expiry_days or (credentials.expiration_days if credentials else 14)
        return PipelineSettings(
            destination=dest, work_dir=data_dir() / "work", preset=self.preset, options=self.options,
            deface_mode=self.deface_mode, pseudonym=self.pseudonym, modalities=self.modalities, engine=self.engine,
            protocol_pages=self.protocol_pages, encryption=self.encryption, expiry_days=expiry, language=self.language,
            keep_work=keep_work, credentials=credentials, lab_name=self.lab_name, lab_contact=self.lab_contact,
            study_name=self.study_name)

    def _credentials(self, explicit: Path | None) -> Credentials | None:
        """The credentials file when the destination may need it.

        A file that exists but is refused (mode, JSON, a value) is an error naming the file and the reason:
        a run never falls back to the local outbox because of it. Only when no file exists at all does a
        run without a destination deliver to the outbox (see `default_outbox`).
        """
        if self.destination.startswith(("folder:", "dicom-node:")) and explicit is None:
            return None
        if explicit is None and self.destination != "nextcloud" and not credentials_path().exists():
            return None
        return load_credentials(explicit)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready mapping (sets as sorted lists, paths as text)."""
        raw = asdict(self)
        raw["modalities"] = sorted(self.modalities)
        raw["protocol_pages"] = list(self.protocol_pages)
        raw["options"] = sorted(self.options) if self.options is not None else None
        raw["ledger"] = str(self.ledger) if self.ledger is not None else None
        return raw


def _one_of(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise MrishareError(f"{name} must be one of {', '.join(allowed)}")


def default_outbox() -> str:
    """The destination of a run when neither flags, settings nor a credentials file name one."""
    return f"folder:{data_dir() / 'outbox'}"


def settings_path() -> Path:
    """Where the saved defaults live."""
    return config_dir() / FILE_NAME


def load_settings(path: Path | None = None) -> UserSettings:
    """The saved defaults (built-in ones if the file does not exist); keys starting with `_` are comments."""
    path = path or settings_path()
    if not path.exists():
        return UserSettings()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MrishareError(f"not readable as JSON ({type(exc).__name__}); fix it or delete it", path) from None
    if not isinstance(raw, dict):
        raise MrishareError("must hold one JSON object", path)
    known = {f.name for f in fields(UserSettings)}
    unknown = sorted(k for k in raw if k not in known and not k.startswith("_"))
    if unknown:
        raise MrishareError(f"unknown setting {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}",
                            path)
    values = {k: v for k, v in raw.items() if k in known and v is not None}
    try:
        for name in ("modalities", "options"):
            if name in values:
                if not isinstance(values[name], list):
                    raise MrishareError(f"{name} must be a list")
                values[name] = frozenset(values[name])
        if "protocol_pages" in values:
            if not isinstance(values["protocol_pages"], list):
                raise MrishareError("protocol_pages must be a list")
            values["protocol_pages"] = tuple(values["protocol_pages"])
        if "ledger" in values:
            values["ledger"] = Path(values["ledger"])
        return UserSettings(**values)
    except MrishareError as error:
        raise MrishareError(error.reason, path) from None
    except TypeError:
        raise MrishareError("a setting has the wrong type (text, whole number or list expected)", path) from None


def save_settings(settings: UserSettings, path: Path | None = None) -> Path:
    """Write the defaults atomically with mode 0600; returns the file written."""
    path = path or settings_path()
    write_private(path, (json.dumps(settings.to_json(), indent=2, sort_keys=True) + "\n").encode())
    return path
