"""What a pipeline run is configured with: its stages and `PipelineSettings`.

Light on purpose (no DICOM, NIfTI or zip libraries), so the app and the command line can build
settings and lay out per-stage progress before anything heavy is imported; `tui.core.pipeline`
runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tui.core.credentials import Credentials
from tui.core.errors import MrishareError
from tui.core.presets import PRESETS, PROTOCOL_PAGES, Preset

STAGES = ("deidentify", "convert", "deface", "pack", "upload", "share")


@dataclass(frozen=True)
class PipelineSettings:
    """Everything a batch needs besides the participants and the ledger."""

    destination: str
    """`folder:PATH`, `nextcloud` or `dicom-node:NAME`."""
    work_dir: Path
    preset: str = "participant-copy"
    options: frozenset[str] | None = None
    """Annex E options; None takes the preset's."""
    deface_mode: str | None = None
    """reface | deface | off; None takes the preset's."""
    pseudonym: str = "keyed"
    modalities: frozenset[str] = frozenset({"MR"})
    protocol_pages: tuple[str, ...] = PROTOCOL_PAGES
    """SeriesDescriptions of protocol/report pages, always quarantined."""
    engine: str = "dcm2niix"
    encryption: str = "aes"
    expiry_days: int = 14
    language: str = "en"
    """Language of the passphrase words."""
    keep_work: bool = False
    """Keep de-identified DICOM and the unpacked package after a successful share."""
    keep_dicom: bool = False
    """Put the de-identified DICOM into the package beside the NIfTI (anatomy defaced in its pixels as the preset
    says), under the leak gate like everything else."""
    allow_incomplete: bool = False
    """Release a series with gaps or unreadable files (recorded in README and audit) instead of withholding it."""
    patient_index: int | None = None
    """Which patient of a folder holding several to share (1 = most files); None: such a folder is an error."""
    credentials: Credentials | None = field(default=None, repr=False)
    release_values: tuple[str, ...] = ()
    """KEYWORD=VALUE values the operator judged not identifying (per value, recorded in the audit)."""
    lab_name: str = ""
    """The lab, its contact and the study as the participant's documents name them (empty: left out)."""
    lab_contact: str = ""
    study_name: str = ""

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise MrishareError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.expiry_days < 1:
            raise MrishareError("expiry must be at least 1 day")
        if self.encryption == "zipcrypto" and self.destination != "nextcloud":
            raise MrishareError("zipcrypto packages are breakable; they are only allowed to Nextcloud, "
                                "behind a share password")

    @property
    def wants_share_password(self) -> bool:
        """A share password is mandatory with zipcrypto, else as the credentials say."""
        return self.encryption == "zipcrypto" or bool(self.credentials and self.credentials.share_password)

    @property
    def include_viewer(self) -> bool:
        """The 3D browser viewer goes into each package unless the credentials file turns it off."""
        return self.credentials.include_viewer if self.credentials else True

    @property
    def profile(self) -> Preset:
        """The preset with this run's overrides applied."""
        base = PRESETS[self.preset]
        return Preset(self.options if self.options is not None else base.options,
                      self.deface_mode or base.deface, base.face_check_blocks)
