"""Participant pseudonyms: keyed (default), ADIT-compatible, from a CSV batch file, or fixed.

keyed: "sub" + the first 10 base32 characters of HMAC-SHA3-256(site secret, PatientID), lower
case. 10 base32 characters are 50 bits, so among n participants the chance that any two share a
pseudonym is about n^2 / 2^51: 4e-8 for 10,000 and 4e-4 for a million. The mapping file refuses a
collision instead of silently merging two people. Without the site secret nobody can recompute
a pseudonym from a guessed PatientID.

adit: the rule of ADIT (github.com/openradx/adit, `adit/core/utils/pseudonymizer.py`,
`compute_pseudonym(seed, identifier, length)`, with `DETERMINISTIC_PSEUDONYM_LENGTH = 14` in
`adit/mass_transfer/processors.py`): SHA-256 over seed + PatientID (UTF-8), the digest read as a
big-endian integer and turned into 14 characters of A-Z0-9 by repeated divmod, least significant
first. The seed is the ADIT job's pseudonym salt, given as `adit:SEED`.

adit-upload: the rule of ADIT's upload app, which pseudonymizes on the client. The uploading
user's department and the PatientID are each padded with spaces to 64 characters (so that a
pseudonym cannot be related to its department), concatenated, and hashed with SHA3-256:
`sha3_256((DEPARTMENT.ljust(64) + PatientID.ljust(64)).encode("utf-8")).hexdigest()`. The 64
lower-case hex characters are the new PatientID and PatientName, and, unshortened, the folder
and file names. Given as `adit-upload:DEPARTMENT` (1-64 characters).

DICOM pads values with trailing spaces or NULs; they are stripped before hashing, so the same
person gets the same pseudonym whichever file or encoding the ID came from.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import re
import string
from dataclasses import dataclass
from pathlib import Path

from tui.core.config import data_dir, write_private
from tui.core.errors import MrishareError

KINDS = ("keyed", "adit", "adit-upload", "csv", "fixed")
HASHED_KINDS = ("keyed", "adit", "adit-upload")
"""Schemes that compute the pseudonym from the PatientID (an empty ID is an error; collisions are refused)."""
ADIT_ALPHABET = string.ascii_uppercase + string.digits
ADIT_LENGTH = 14
ADIT_UPLOAD_WIDTH = 64
"""ADIT's upload app pads department and PatientID to this many characters before hashing."""
KEYED_PREFIX = "sub"
KEYED_CHARS = 10
# A pseudonym becomes a folder name and a PatientID (LO, 64 chars): keep it boring.
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class PseudonymScheme:
    """How pseudonyms are made: `kind` is keyed/adit/csv/fixed, `arg` the seed, file or value."""

    kind: str = "keyed"
    arg: str = ""

    def __str__(self) -> str:
        """The kind only: seeds, files and values stay out of logs."""
        return self.kind


def parse_scheme(spec: str) -> PseudonymScheme:
    """`keyed`, `adit:SEED`, `adit-upload:DEPARTMENT`, `csv:FILE` or `fixed:VALUE` as given on the command line."""
    kind, _, arg = spec.partition(":")
    if kind not in KINDS:
        raise MrishareError(f"unknown pseudonym scheme {kind!r}; use one of keyed, adit:SEED, "
                            "adit-upload:DEPARTMENT, csv:FILE, fixed:VALUE")
    if kind == "keyed" and arg:
        raise MrishareError("the keyed scheme takes no argument (it uses the site secret)")
    if kind != "keyed" and not arg:
        placeholder = {"adit": "SEED", "adit-upload": "DEPARTMENT"}.get(kind, kind.upper())
        raise MrishareError(f"the {kind} scheme needs a value: {kind}:{placeholder}")
    if kind == "adit-upload":
        _check_department(arg)
    if kind == "fixed":
        _check_safe(arg, "fixed pseudonym")
    return PseudonymScheme(kind, arg)


def strip_padding(value: object) -> str:
    """A DICOM string value without its trailing space/NUL padding (and surrounding blanks)."""
    return str(value if value is not None else "").rstrip(" \x00").strip()


def keyed_pseudonym(secret: bytes, patient_id: str) -> str:
    """`sub` + 10 lower-case base32 characters of HMAC-SHA3-256(secret, PatientID)."""
    digest = hmac.new(secret, patient_id.encode("utf-8"), hashlib.sha3_256).digest()
    return KEYED_PREFIX + base64.b32encode(digest).decode("ascii")[:KEYED_CHARS].lower()


def adit_pseudonym(seed: str, patient_id: str, length: int = ADIT_LENGTH) -> str:
    """ADIT's deterministic pseudonym (see the module docstring for the source)."""
    number = int.from_bytes(hashlib.sha256((seed + patient_id).encode("utf8")).digest(), "big")
    chars = []
    for _ in range(length):
        number, index = divmod(number, len(ADIT_ALPHABET))
        chars.append(ADIT_ALPHABET[index])
    return "".join(chars)


def adit_upload_pseudonym(department: str, patient_id: str) -> str:
    """ADIT upload's pseudonym: SHA3-256 over department and PatientID, each padded to 64 characters."""
    _check_department(department)
    text = department.ljust(ADIT_UPLOAD_WIDTH) + patient_id.ljust(ADIT_UPLOAD_WIDTH)
    return hashlib.sha3_256(text.encode("utf-8")).hexdigest()


def _check_department(department: str) -> None:
    """ADIT pads the department to 64 characters: a longer or blank one cannot be used."""
    if not department.strip():
        raise MrishareError("the adit-upload department must not be empty")
    if len(department) > ADIT_UPLOAD_WIDTH:
        raise MrishareError(f"the adit-upload department has {len(department)} characters; "
                            f"at most {ADIT_UPLOAD_WIDTH} are allowed")


def _check_safe(value: str, what: str, where: str | Path | None = None) -> None:
    """Refuse pseudonyms that are not safe as a folder name and a DICOM LO value."""
    if not _SAFE.fullmatch(value):
        raise MrishareError(f"{what} must be 1-64 characters of A-Z a-z 0-9 . _ - (starting alphanumeric)", where)


def identity_key(patient_id: object, patient_name: object = "", birth_date: object = "",
                 folder: str = "") -> tuple[str, str]:
    """(key, what it is) for the pseudonym and date offsets: the PatientID; if that is empty, the
    next stable identity: PatientName + PatientBirthDate, else the participant folder name. The
    derived keys carry a prefix, so they never equal a real PatientID."""
    pid = strip_padding(patient_id)
    if pid:
        return pid, "PatientID"
    name, born = strip_padding(patient_name), strip_padding(birth_date)
    if name:
        return f"name+birth:{' '.join(name.replace('^', ' ').split()).upper()}|{born}", "PatientName+PatientBirthDate"
    return f"folder:{folder}", "participant folder name"


class Pseudonymizer:
    """Turns a PatientID into its pseudonym under one scheme."""

    def __init__(self, scheme: PseudonymScheme, secret: bytes) -> None:
        self.scheme = scheme
        self._secret = secret
        self._table = _read_table(Path(scheme.arg)) if scheme.kind == "csv" else {}

    def pseudonym(self, patient_id: object, where: str | Path | None = None) -> str:
        """The pseudonym for `patient_id` (padding stripped); an empty ID is an error for keyed/adit."""
        pid = strip_padding(patient_id)
        kind = self.scheme.kind
        if not pid and kind in HASHED_KINDS:
            raise MrishareError(f"empty PatientID: no {kind} pseudonym possible (use --pseudonym fixed:VALUE)", where)
        if kind == "keyed":
            return keyed_pseudonym(self._secret, pid)
        if kind == "adit":
            return adit_pseudonym(self.scheme.arg, pid)
        if kind == "adit-upload":
            return adit_upload_pseudonym(self.scheme.arg, pid)
        if kind == "fixed":
            return self.scheme.arg
        if pid not in self._table:
            raise MrishareError("PatientID not found in the pseudonym CSV", where or self.scheme.arg)
        return self._table[pid]


def _read_table(path: Path) -> dict[str, str]:
    """PatientID -> pseudonym from a two-column CSV (header row optional)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise MrishareError(f"cannot read pseudonym CSV ({error.strerror})", path) from None
    table: dict[str, str] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < 2:
            raise MrishareError(f"line {number}: expected PatientID,pseudonym", path)
        pid, pseudonym = strip_padding(row[0]), row[1].strip()
        if number == 1 and pid.lower().replace(" ", "") in ("patientid", "id", "pid"):
            continue
        _check_safe(pseudonym, f"line {number}: pseudonym", path)
        table[pid] = pseudonym
    return table


def mapping_path() -> Path:
    """The local PatientID -> pseudonym mapping file (mode 0600, never leaves the machine)."""
    return data_dir() / "pseudonym-map.csv"


def record_mapping(scheme: PseudonymScheme, patient_id: str, pseudonym: str, path: Path | None = None) -> None:
    """Add (scheme, PatientID, pseudonym) to the mapping CSV; refuse a keyed/adit collision."""
    path = path or mapping_path()
    rows: list[list[str]] = []
    if path.exists():
        rows = [row for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8"))) if len(row) == 3][1:]
    pid = strip_padding(patient_id)
    for kind, known_pid, known in rows:
        if kind == scheme.kind and known_pid == pid and known == pseudonym:
            return
        if kind == scheme.kind and known == pseudonym and known_pid != pid and kind in HASHED_KINDS:
            raise MrishareError("two PatientIDs map to the same pseudonym; choose another scheme", path)
    rows.append([scheme.kind, pid, pseudonym])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["scheme", "PatientID", "pseudonym"])
    writer.writerows(rows)
    write_private(path, buffer.getvalue().encode("utf-8"))
