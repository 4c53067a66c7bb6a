"""What of a participant may be shared as it is: one patient only, and no series that looks whole but is not.

Discovery (`dicom_scan`) finds the facts: several PatientIDs in one folder, gaps in a series, files or
folders that could not be read. This module turns them into a decision before de-identification:
mixed patients stop the participant unless the user picked one; an incomplete series is withheld
(the participant's other series go on) unless the user allowed incomplete series, in which case it
is released and its gaps are recorded. The run then ends "partly shared", never as a silent success.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tui.core.dicom.scan import Participant, Problem, Series
from tui.core.errors import MrishareError


@dataclass(frozen=True)
class Gap:
    """One series (or, with no `key`, the participant folder) that is not whole, and what is known about it."""

    key: str
    """`Series.key`, or '' for what belongs to no known series."""
    number: int | None
    problems: tuple[Problem, ...]

    @property
    def where(self) -> str:
        """`series N` (the SeriesNumber) or `participant folder`."""
        if not self.key:
            return "participant folder"
        return f"series {self.number}" if self.number is not None else "a series without SeriesNumber"

    def text(self) -> str:
        """The full reason with file names (for the user: CLI, ledger, TUI, audit)."""
        return f"{self.where}: " + "; ".join(str(p) for p in self.problems)

    def summary(self) -> str:
        """The reason without file names (safe for the package README)."""
        return f"{self.where}: " + "; ".join(p.summary for p in self.problems)


@dataclass(frozen=True)
class Admission:
    """The participant to process, and the gaps that were withheld or (if allowed) released."""

    participant: Participant
    withheld: tuple[Gap, ...]
    released: tuple[Gap, ...]

    @property
    def partial(self) -> bool:
        """True if something of the participant is not in the package."""
        return bool(self.withheld)

    @property
    def in_package(self) -> tuple[Gap, ...]:
        """Gaps the package itself may show: released series, and what belongs to no known series."""
        return self.released + tuple(g for g in self.withheld if not g.key)

    def note(self) -> str:
        """One line for the ledger and the outcome ('' if the package is whole)."""
        if self.withheld:
            return "partly shared: withheld " + " | ".join(g.text() for g in self.withheld)
        if self.released:
            return "incomplete series released on request: " + " | ".join(g.text() for g in self.released)
        return ""


def choose_patient(participant: Participant, index: int | None) -> Participant:
    """The participant with one patient chosen (1 = most files); more than one and no choice is an error.

    The other patients' files become misfiled (quarantined by de-identification, never released); they
    stay in `patients` so that their identifiers are still searched for. A participant already `chosen`
    (in the app) keeps its choice. Only file counts are named: a patient's name or ID never goes into a message.
    """
    patients = participant.patients
    if index is None and participant.chosen:
        return participant
    if index is None:
        if len(patients) > 1:
            counts = " + ".join(str(p.files) for p in patients)
            raise MrishareError(f"{len(patients)} patients in one participant folder ({counts} files); nothing "
                                "shared: choose one with --patient-index N (1 = the one with the most files)")
        return participant
    if not 1 <= index <= len(patients):
        raise MrishareError(f"--patient-index {index}: this folder holds {len(patients)} patient(s)")
    chosen = patients[index - 1]
    others = [p for p in patients if p is not chosen]
    misfiled = sorted(f for p in others for st in p.studies for s in st.series for f in s.files)
    return replace(participant, patients=[chosen, *others], misfiled=misfiled, chosen=True)


def _gaps(series: list[Series]) -> list[Gap]:
    return [Gap(s.key, s.number, tuple(s.problems)) for s in series if s.problems and not s.kind]


def admit(participant: Participant, allow_incomplete: bool) -> Admission:
    """Withhold every incomplete series (or release it, recorded, when `allow_incomplete` or when the user
    released that series: `participant.released`)."""
    main = participant.main_patient
    series = [s for st in main.studies for s in st.series] if main else []
    gaps = _gaps(series)
    if participant.problems:
        gaps.append(Gap("", None, tuple(participant.problems)))
    if allow_incomplete or not gaps:
        return Admission(participant, (), tuple(gaps))
    released = tuple(g for g in gaps if g.key and g.key in participant.released)
    withheld = tuple(g for g in gaps if g not in released)
    keys = {g.key for g in withheld if g.key}
    if keys and len(keys) == len([s for s in series if not s.kind]):
        raise MrishareError("every series is incomplete; nothing shared (" + " | ".join(g.text() for g in gaps)
                            + "); --allow-incomplete releases them with the gaps recorded")
    return Admission(participant.without(keys), withheld, released)
