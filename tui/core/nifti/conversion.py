"""DICOM series -> compressed NIfTI + whitelisted JSON sidecar under BIDS names, with two engines.

Engines: `dcm2niix` (default, the static binary from the PyPI wheel) and `dicom2nifti` (pure
Python, run in a child process by `convert_worker`). Both write *displayed* values (DICOM
RescaleSlope/Intercept, stored integers + scl_slope/scl_inter): for Philips that is what the
console shows, not dcm2niix's default "precise float" (which divides by the private scale slope
2005,100E and differs by RS*SS, e.g. 56.7x); the Philips factors stay in the sidecar.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from threading import Event
from typing import Any, BinaryIO, Protocol, cast

import nibabel as nib
import numpy as np
import pydicom
from isal import igzip

from tui.core.childproc import child_env
from tui.core.dicom.scan import Series, object_kind
from tui.core.errors import MrishareError
from tui.core.events import (
    EventStream,
    StepFailed,
    StepFinished,
    StepNote,
    StepProgress,
    StepStarted,
)
from tui.core.nifti.shortfall import Written, shortfall

STEP = "convert"
GZIP_LEVEL = 2  # ISA-L level 2: about zlib -6 size (+5%) at a tenth of the time
ENGINE_TIMEOUT_S = 900

# Acquisition physics only. Everything else in dcm2niix's sidecar is dropped, notably
# AcquisitionTime, DeviceSerialNumber, Institution*, StationName, StudyDescription,
# ProcedureStepDescription (can equal the patient name), SeriesDescription, ProtocolName,
# SeriesNumber, SAR (depends on body weight), TablePosition, ShimSetting, TxRefAmp, coil
# names, SoftwareVersions and BidsGuess (carries the series number).
SIDECAR_KEYS = frozenset({
    "Modality", "MagneticFieldStrength", "ImagingFrequency", "Manufacturer", "ManufacturersModelName",
    "BodyPart", "PatientPosition", "MRAcquisitionType", "ScanningSequence", "SequenceVariant",
    "ScanOptions", "SequenceName", "PulseSequenceType", "PulseSequenceDetails", "ImageType",
    "EchoTime", "RepetitionTime", "InversionTime", "FlipAngle", "SliceThickness",
    "SpacingBetweenSlices", "PixelBandwidth", "EchoNumber", "EchoTrainLength", "PercentPhaseFOV",
    "PercentSampling", "PhaseEncodingSteps", "FrequencyEncodingSteps", "PhaseEncodingStepsOutOfPlane",
    "AcquisitionMatrixPE", "ReconMatrixPE", "BaseResolution", "PhaseResolution",
    "ParallelReductionFactorInPlane", "ParallelReductionFactorOutOfPlane", "ParallelAcquisitionTechnique",
    "PartialFourier", "MultibandAccelerationFactor", "PhaseEncodingDirection", "PhaseEncodingAxis",
    "InPlanePhaseEncodingDirectionDICOM", "SliceEncodingDirection", "SliceTiming", "EffectiveEchoSpacing",
    "TotalReadoutTime", "EstimatedEffectiveEchoSpacing", "EstimatedTotalReadoutTime",
    "DerivedVendorReportedEchoSpacing", "BandwidthPerPixelPhaseEncode", "DwellTime", "WaterFatShift",
    "MTState", "SpoilingState", "SpoilingType", "AcquisitionDuration", "NumberOfKSpaceTrajectories",
    "ImageOrientationPatientDICOM", "DiffusionScheme",
    "PhilipsRescaleSlope", "PhilipsRescaleIntercept", "PhilipsScaleSlope", "PhilipsRWVSlope",
    "PhilipsRWVIntercept", "UsePhilipsFloatNotDisplayScaling",
    "ConversionSoftware", "ConversionSoftwareVersion",
})
# NIfTI header text fields: dcm2niix puts "TE=..;Time=<time of day>" in descrip even with -ba y.
BLANK_HEADER_FIELDS = ("descrip", "aux_file", "db_name", "intent_name")

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
LOCALIZER_WORDS = re.compile(r"locali[sz]er|scout|survey|3[-_ ]?plane|aahead|aascout|pilot", re.IGNORECASE)
LABEL = re.compile(r"^[A-Za-z0-9]+$")


@dataclass(frozen=True)
class SeriesInput:
    """One DICOM series to convert (built by the pipeline from already de-identified files)."""

    key: str
    files: list[Path]
    description: str = ""
    modality: str = "MR"
    image_type: str = ""
    sop_classes: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Converted:
    """A written NIfTI (`.nii.gz`) and its sidecar; `suffix` is the BIDS suffix (T1w, FLAIR, dwi...).

    The rest is what defacing needs to pair echoes, phase and MP2RAGE parts (tui/core/nifti/deface_pairs.py).
    """

    series_key: str
    nifti: Path
    sidecar: Path
    suffix: str
    echo: int | None = None
    part: str | None = None
    frame_of_reference: str = ""
    image_type: tuple[str, ...] = ()
    description: str = ""
    shortfall: str = ""
    """'' if the series' outputs hold all its images, else e.g. '34 of 35 slices converted' (`shortfall`)."""


@dataclass(frozen=True)
class NotConverted:
    """A series that was skipped, with a one-line, non-identifying reason."""

    series_key: str
    reason: str


Result = Converted | NotConverted


class SeriesRejected(Exception):
    """The data itself cannot be converted faithfully (e.g. a slice is missing); no fallback helps."""


class EngineFailed(Exception):
    """The engine broke on this series; another engine may still manage."""


@dataclass(frozen=True)
class RawOutput:
    """An engine's uncompressed NIfTI with its unfiltered sidecar and name entities."""

    nifti: Path
    sidecar: dict[str, Any]
    echo: int | None = None
    part: str | None = None
    extra: str | None = None
    extras: tuple[Path, ...] = ()  # .bval/.bvec beside the NIfTI
    dropped_volumes: int = 0
    """Volumes the engine left out on purpose (ADC/trace maps inside a diffusion series)."""


class Engine(Protocol):
    """Converts one series' files into raw NIfTI outputs inside `work` (an empty private folder)."""

    name: str

    def convert(self, files: list[Path], work: Path) -> list[RawOutput]:
        """Raise SeriesRejected for unconvertible data, EngineFailed for engine trouble."""
        ...


def _link_inputs(files: list[Path], folder: Path) -> None:
    """Expose `files` under neutral names in `folder` (symlinks; copies where links are refused)."""
    folder.mkdir(parents=True)
    for index, path in enumerate(files):
        target = folder / f"{index:05d}.dcm"
        try:
            target.symlink_to(Path(path).resolve())
        except OSError:
            shutil.copy2(path, target)


class Dcm2niixEngine:
    """The dcm2niix binary shipped by the `dcm2niix` wheel, with privacy-safe options."""

    name = "dcm2niix"

    def __init__(self, binary: str | None = None) -> None:
        import dcm2niix

        self.binary = binary or dcm2niix.bin

    def command(self, source: Path, out: Path, compress: bool = False) -> list[str]:
        """The command line: our own file name, displayed-value scaling, no user defaults."""
        return [
            self.binary, "-f", "s", "-z", "y" if compress else "n", "-b", "y", "-ba", "y",
            "-p", "n", "-l", "o", "-d", "0", "-x", "n", "-i", "n", "-m", "2", "-w", "2", "-v", "0",
            "-c", "", "-o", str(out), str(source),
        ]

    def convert(self, files: list[Path], work: Path) -> list[RawOutput]:
        """Run dcm2niix on the linked files; one series may give several outputs (echoes, phase)."""
        source, out = work / "in", work / "out"
        _link_inputs(files, source)
        out.mkdir()
        # HOME points at the private folder so no ~/.dcm2nii.ini can change the options.
        env = {**os.environ, "HOME": str(work)}
        try:
            proc = subprocess.run(self.command(source, out), check=False, cwd=work, env=env,
                                  capture_output=True, text=True, errors="replace", timeout=ENGINE_TIMEOUT_S)
        except subprocess.TimeoutExpired as error:
            raise EngineFailed(f"dcm2niix timed out after {ENGINE_TIMEOUT_S} s") from error
        # Overlays (60xx) come out as `_ROI<n>` images: annotations, often burned-in text, never released.
        images = sorted(p for p in out.glob("s*.nii") if "_ROI" not in p.name)
        if proc.returncode < 0:
            raise EngineFailed(f"dcm2niix killed by signal {-proc.returncode}")
        if proc.returncode != 0:
            raise EngineFailed(f"dcm2niix exit code {proc.returncode}")
        if not images:
            raise EngineFailed("dcm2niix wrote no image")
        if any("_Eq_" in p.name for p in images):
            raise SeriesRejected("inconsistent slice spacing")
        dropped = sum(int(n) for n in DERIVED_DROPPED.findall(proc.stdout))
        outputs = []
        for index, image in enumerate(images):
            stem = image.name[: -len(".nii")]
            sidecar_path = image.with_suffix(".json")
            sidecar = _engine_json(sidecar_path, "dcm2niix sidecar") if sidecar_path.exists() else {}
            extras = tuple(p for p in (image.with_suffix(".bval"), image.with_suffix(".bvec")) if p.exists())
            outputs.append(RawOutput(image, sidecar, extras=extras, dropped_volumes=0 if index else dropped,
                                     **_postfix_entities(stem[1:])))
        return outputs


def _engine_json(path: Path, what: str) -> Any:
    """A JSON file an engine wrote; cut short (an engine exits 0 on a full disk too) it is a failure that says so."""
    try:
        return json.loads(path.read_text())
    except ValueError:
        free = shutil.disk_usage(path.parent).free
        raise EngineFailed(f"{what} is damaged; {free // 1024} kB free at {path.parent} (disk full?)") from None


DERIVED_DROPPED = re.compile(r"Note: (\d+) volumes appear to be ADC or trace images that will be removed")
"""dcm2niix's own word that it left derived maps out of a diffusion series (they are not a loss)."""


def _postfix_entities(postfix: str) -> dict[str, Any]:
    """Map a dcm2niix file-name postfix (`_e2_ph`, `_i00002`...) to BIDS-like entities."""
    entities: dict[str, Any] = {}
    # `-w 2`: a second output of one name gets a letter (`sa`, `s_e1a`); it is another run, not an entity
    postfix = re.sub(r"(?:^|(?<=\d))[a-z]$", "", postfix)
    echo = re.search(r"_e(\d+)", postfix)
    if echo:
        entities["echo"] = int(echo.group(1))
        postfix = postfix.replace(echo.group(0), "", 1)
    for token, part in (("_ph", "phase"), ("_real", "real"), ("_imaginary", "imag")):
        if postfix.endswith(token) or f"{token}_" in postfix:
            entities["part"] = part
            postfix = postfix.replace(token, "", 1)
    extra = re.sub(r"[^A-Za-z0-9]", "", postfix)
    if extra:
        entities["extra"] = extra
    return entities


DICOM2NIFTI_REASONS = {
    "TOO_FEW_SLICES/LOCALIZER": "dicom2nifti needs at least 3 slices",
    "SLICE_INCREMENT_INCONSISTENT": "inconsistent slice spacing",
    "IMAGE_ORIENTATION_INCONSISTENT": "mixed slice orientations",
    "NON_IMAGING_DICOM_FILES": "not an image series",
    "MISSING_DICOM_FILES": "missing slices",
}


class Dicom2niftiEngine:
    """dicom2nifti in a child process (`convert_worker`), so a native crash cannot end the batch."""

    name = "dicom2nifti"

    def convert(self, files: list[Path], work: Path) -> list[RawOutput]:
        """Run the worker on `files`; rebuild the sidecar from the first header."""
        work.mkdir(parents=True, exist_ok=True)
        output = work / "d2n.nii"
        request = work / "request.json"
        request.write_text(json.dumps({"files": [str(p) for p in files], "output": str(output)}))
        env = child_env()
        # -P and a fresh cwd: a `dl/` folder in the caller's cwd breaks `import gdcm`.
        command = [sys.executable, "-P", "-m", "tui.core.nifti.convert_worker", str(request)]
        try:
            proc = subprocess.run(command, check=False, cwd=work, env=env, capture_output=True, text=True,
                                  errors="replace", timeout=ENGINE_TIMEOUT_S)
        except subprocess.TimeoutExpired as error:
            raise EngineFailed(f"dicom2nifti timed out after {ENGINE_TIMEOUT_S} s") from error
        result_path = work / "result.json"
        if proc.returncode < 0:
            raise EngineFailed(f"dicom2nifti worker killed by signal {-proc.returncode}")
        if not result_path.exists():
            raise EngineFailed(f"dicom2nifti worker exit code {proc.returncode}")
        result = _engine_json(result_path, "dicom2nifti worker result")
        if result["status"] == "rejected":
            code = result.get("code", "")
            raise SeriesRejected(DICOM2NIFTI_REASONS.get(code, f"dicom2nifti rejected it ({code[:40]})"))
        if result["status"] != "ok":
            raise EngineFailed(f"dicom2nifti: {result.get('reason', 'unknown error')}")
        header = read_header(files[0])
        sidecar = sidecar_from_header(header, cast(nib.Nifti1Image, nib.load(output)).affine)
        extras = tuple(sorted(p for p in work.iterdir() if p.suffix in (".bval", ".bvec")))
        return [RawOutput(output, sidecar, extras=extras)]


ENGINES: dict[str, type] = {"dcm2niix": Dcm2niixEngine, "dicom2nifti": Dicom2niftiEngine}


def get_engine(name: str) -> Engine:
    """The engine called `name` (`dcm2niix` or `dicom2nifti`)."""
    if name not in ENGINES:
        raise MrishareError(f"unknown conversion engine {name!r}; choose one of {', '.join(ENGINES)}")
    return ENGINES[name]()


# --- DICOM header helpers --------------------------------------------------------------------

def read_header(path: Path) -> pydicom.Dataset:
    """The DICOM header of `path` without pixel data."""
    return pydicom.dcmread(path, stop_before_pixels=True, force=True)


def _find(ds: pydicom.Dataset, *keywords: str) -> Any:
    """First value of any keyword, at top level or in the first functional-group items (enhanced MR)."""
    places = [ds]
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        items = ds.get(group)
        if items:
            places += [seq[0] for seq in items[0] if seq.VR == "SQ" and len(seq.value)]
    for keyword in keywords:
        for place in places:
            value = place.get(keyword)
            if value is not None and value != "":
                return value
    return None


def _plain(value: Any) -> Any:
    """A pydicom value as JSON-ready int/float/str/list."""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return [_plain(v) for v in value]
    if isinstance(value, (pydicom.valuerep.DSfloat, pydicom.valuerep.DSdecimal, float)):
        return float(value)
    if isinstance(value, (pydicom.valuerep.IS, int)):
        return int(value)
    return str(value)


# sidecar key -> DICOM keywords (classic first, enhanced MR alternatives after)
HEADER_TO_SIDECAR = {
    "Modality": ("Modality",),
    "MagneticFieldStrength": ("MagneticFieldStrength",),
    "ImagingFrequency": ("ImagingFrequency", "TransmitterFrequency"),
    "Manufacturer": ("Manufacturer",),
    "ManufacturersModelName": ("ManufacturerModelName",),
    "BodyPart": ("BodyPartExamined",),
    "PatientPosition": ("PatientPosition",),
    "MRAcquisitionType": ("MRAcquisitionType",),
    "ScanningSequence": ("ScanningSequence",),
    "SequenceVariant": ("SequenceVariant",),
    "ScanOptions": ("ScanOptions",),
    "SequenceName": ("SequenceName", "PulseSequenceName"),
    "ImageType": ("ImageType",),
    "EchoTime": ("EchoTime", "EffectiveEchoTime"),
    "RepetitionTime": ("RepetitionTime",),
    "InversionTime": ("InversionTime", "InversionTimes"),
    "FlipAngle": ("FlipAngle",),
    "SliceThickness": ("SliceThickness",),
    "SpacingBetweenSlices": ("SpacingBetweenSlices",),
    "PixelBandwidth": ("PixelBandwidth",),
    "EchoTrainLength": ("EchoTrainLength",),
    "PercentPhaseFOV": ("PercentPhaseFieldOfView",),
    "PercentSampling": ("PercentSampling",),
    "ParallelReductionFactorInPlane": ("ParallelReductionFactorInPlane",),
    "ParallelAcquisitionTechnique": ("ParallelAcquisitionTechnique",),
    "InPlanePhaseEncodingDirectionDICOM": ("InPlanePhaseEncodingDirection",),
}
MILLISECONDS = {"EchoTime", "RepetitionTime", "InversionTime"}  # DICOM ms -> BIDS s


def _ms(header: pydicom.Dataset, *keywords: str) -> float | None:
    """A time in ms (first value if multi-valued), or None."""
    value = _find(header, *keywords)
    if isinstance(value, (list, pydicom.multival.MultiValue)):
        value = value[0] if len(value) else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def sidecar_from_header(header: pydicom.Dataset, affine: np.ndarray) -> dict[str, Any]:
    """A BIDS-style sidecar from DICOM tags (for engines that write none), same keys as dcm2niix."""
    sidecar: dict[str, Any] = {}
    for key, keywords in HEADER_TO_SIDECAR.items():
        if key in MILLISECONDS:
            value = _ms(header, *keywords)
            if value is not None:
                sidecar[key] = round(value / 1000.0, 6)
            continue
        value = _find(header, *keywords)
        if value is not None:
            sidecar[key] = _plain(value)
    if "ImageType" in sidecar and not isinstance(sidecar["ImageType"], list):
        sidecar["ImageType"] = [sidecar["ImageType"]]
    axis = _phase_axis(header, affine)
    if axis:
        sidecar["PhaseEncodingAxis"] = axis
    if "philips" in str(header.get("Manufacturer", "")).lower():
        slope, inter = _find(header, "RescaleSlope"), _find(header, "RescaleIntercept")
        if slope is not None:
            sidecar["PhilipsRescaleSlope"] = float(slope)
            sidecar["PhilipsRescaleIntercept"] = float(inter or 0)
        private = header.get((0x2005, 0x100E))
        if private is not None and isinstance(private.value, (int, float)):
            sidecar["PhilipsScaleSlope"] = float(private.value)
        sidecar["UsePhilipsFloatNotDisplayScaling"] = 0
    sidecar["ConversionSoftware"] = "dicom2nifti"
    sidecar["ConversionSoftwareVersion"] = metadata.version("dicom2nifti")
    return sidecar


def _orientation(header: pydicom.Dataset) -> np.ndarray | None:
    """ImageOrientationPatient as a (2, 3) array (row, column direction), or None."""
    iop = _find(header, "ImageOrientationPatient")
    if iop is None or len(iop) != 6:
        return None
    return np.array([float(v) for v in iop]).reshape(2, 3)


def _phase_axis(header: pydicom.Dataset, affine: np.ndarray) -> str | None:
    """The NIfTI voxel axis (i/j/k) along the in-plane phase-encoding direction."""
    direction = str(_find(header, "InPlanePhaseEncodingDirection") or "").upper()
    iop = _orientation(header)
    if iop is None or direction not in ("ROW", "COL"):
        return None
    # DICOM LPS -> NIfTI RAS; "ROW" phase encoding runs along the row direction vector.
    vector = iop[0 if direction == "ROW" else 1] * np.array([-1.0, -1.0, 1.0])
    axes = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    return "ijk"[int(np.argmax(np.abs(vector @ axes)))]


def _plane(header: pydicom.Dataset) -> str:
    """`sag`, `cor` or `ax` from the slice normal, or '' if unknown."""
    iop = _orientation(header)
    if iop is None:
        return ""
    normal = np.abs(np.cross(iop[0], iop[1]))
    return ("sag", "cor", "ax")[int(np.argmax(normal))]


# --- which series, which suffix ---------------------------------------------------------------

def skip_reason(series: SeriesInput, header: pydicom.Dataset) -> str | None:
    """Why `series` should not be converted (one line), or None to convert it."""
    if any(uid.startswith(SECONDARY_CAPTURE) for uid in series.sop_classes):
        return "secondary capture"
    kinds = sorted({object_kind(uid) for uid in series.sop_classes} - {""})
    if kinds:
        return f"not an image series ({', '.join(kinds)})"
    # A localizer is known by what it says it is, never by its slice count: dcm2niix converts 2-slice series.
    if "LOCALIZER" in series.image_type.upper() or LOCALIZER_WORDS.search(series.description or ""):
        return "localizer"
    images = int(header.get("NumberOfFrames") or 1) if len(series.files) == 1 else len(series.files)
    if images <= 1:
        return "single image"
    return None


SUFFIX_WORDS = [
    # before bold: "fcMRI Field Mapping" is a field map (magnitude and phase echoes that show the face)
    ("fieldmap", r"field[ _-]?map|\bfmap\b|\bb0[ _-]?map"),
    ("dwi", r"diff|\bdwi|\bdti|dbsi|\btrace\b|\badc\b"),
    ("bold", r"bold|fmri|resting|\brest\b|\bfunc"),
    ("FLAIR", r"flair|dark[ _-]?fluid|tirm"),
    ("T2starw", r"t2\*|t2star|\bswi\b|hemo"),
    ("angio", r"\btof\b|angio"),
    ("PDw", r"\bpd\b|\bpdw|proton"),
    ("T1w", r"t1|mp-?2?rage|mp_rage|\btfl\b|spgr|bravo|\btfe\b"),
    ("T2w", r"t2|\btse\b|\bspace\b|\bcube\b|haste"),
]
DATATYPE = {"dwi": "dwi", "bold": "func", "fieldmap": "fmap"}


def guess_suffix(description: str, header: pydicom.Dataset) -> str:
    """BIDS suffix from the series/protocol/sequence names, else from TR/TE/TI."""
    text = " ".join(str(v) for v in (description, header.get("ProtocolName"),
                                      _find(header, "SequenceName", "PulseSequenceName")) if v).lower()
    for suffix, pattern in SUFFIX_WORDS:
        if re.search(pattern, text):
            return suffix
    tr, te, ti = _ms(header, "RepetitionTime"), _ms(header, "EchoTime", "EffectiveEchoTime"), \
        _ms(header, "InversionTime", "InversionTimes")
    if ti and ti >= 1400 and tr and tr >= 4000:
        return "FLAIR"
    if te and te >= 60:
        return "T2w"
    if (tr and tr < 1000) or (ti and te and te < 15):
        return "T1w"
    if tr and tr >= 1500 and te and te < 40:
        return "PDw"
    return "unknown"


def bids_name(subject: str, session: str, suffix: str, acq: str | None = None, run: int | None = None,
              echo: int | None = None, part: str | None = None, task: str | None = None) -> str:
    """`sub-<s>_ses-<n>[_task-][_acq-<a>][_run-<r>][_echo-][_part-]_<suffix>` (BIDS entity order)."""
    entities = [("sub", subject), ("ses", session), ("task", task), ("acq", acq), ("run", run),
                ("echo", echo), ("part", part)]
    for key, value in entities:
        if value is not None and not LABEL.match(str(value)):
            raise MrishareError(f"BIDS {key} label must be letters and digits only")
    return "_".join([f"{k}-{v}" for k, v in entities if v is not None] + [suffix])


def subject_dir(out_dir: Path, subject: str) -> Path:
    """`out_dir/sub-<subject>`: where series folders, previews, index.html and README.txt go."""
    return Path(out_dir) / f"sub-{subject}"


# --- NIfTI header cleaning --------------------------------------------------------------------

def _open_header(handle: BinaryIO) -> nib.Nifti1Header:
    """Parse the NIfTI-1 or NIfTI-2 header at the start of `handle`."""
    size = handle.read(4)
    handle.seek(0)
    klass = nib.Nifti2Header if 540 in (int.from_bytes(size, "little"), int.from_bytes(size, "big")) \
        else nib.Nifti1Header
    return klass.from_fileobj(handle, check=False)


def clean_header(header: nib.Nifti1Header) -> None:
    """Blank the free-text fields and drop extensions (they can hold DICOM headers)."""
    for name in BLANK_HEADER_FIELDS:
        if name in header:
            header[name] = b""
    header.extensions.clear()


def write_clean_gz(source: Path, target: Path) -> None:
    """Copy an uncompressed NIfTI to `.nii.gz` with a cleaned header; no name or time in the gzip header."""
    with open(source, "rb") as src:
        header = _open_header(src)
        data_offset = int(header["vox_offset"])
        clean_header(header)
        header["vox_offset"] = header.sizeof_hdr + 4
        src.seek(data_offset)
        with open(target, "wb") as raw, igzip.IGzipFile(filename="", mode="wb", fileobj=raw,
                                                        compresslevel=GZIP_LEVEL, mtime=0) as gz:
            gz.write(header.binaryblock + b"\0\0\0\0")
            shutil.copyfileobj(src, gz, 1 << 22)


def filter_sidecar(sidecar: dict[str, Any]) -> dict[str, Any]:
    """Only whitelisted acquisition-physics keys."""
    return {k: v for k, v in sidecar.items() if k in SIDECAR_KEYS}


# --- one series, then naming ------------------------------------------------------------------

@dataclass
class _Staged:
    """A converted output waiting for its final BIDS name."""

    series_key: str
    nifti: Path
    sidecar: dict[str, Any]
    suffix: str
    hint: str
    echo: int | None
    part: str | None
    extra: str | None
    task: str | None
    extras: tuple[Path, ...]
    frame_of_reference: str = ""
    description: str = ""
    shortfall: str = ""


def _run_engines(files: list[Path], engines: list[Engine], work: Path) -> list[RawOutput]:
    """First engine that manages; SeriesRejected stops at once, EngineFailed tries the next."""
    failures = []
    for index, engine in enumerate(engines):
        try:
            return engine.convert(files, work / f"{index}-{engine.name}")
        except EngineFailed as error:
            failures.append(str(error))
    raise EngineFailed("; ".join(failures))


def _convert_one(series: SeriesInput, engines: list[Engine], work: Path) -> list[_Staged] | NotConverted:
    """Convert one series into staged, cleaned `.nii.gz` files in `work`."""
    if not series.files:
        return NotConverted(series.key, "no files")
    try:
        header = read_header(series.files[0])
    except (OSError, pydicom.errors.InvalidDicomError):
        return NotConverted(series.key, "unreadable DICOM header")
    reason = skip_reason(series, header)
    if reason:
        return NotConverted(series.key, reason)
    try:
        outputs = _run_engines(series.files, engines, work)
    except SeriesRejected as error:
        return NotConverted(series.key, str(error))
    except EngineFailed as error:
        return NotConverted(series.key, f"engine failed: {error}")
    suffix = guess_suffix(series.description, header)
    acquisition = str(header.get("MRAcquisitionType") or _find(header, "MRAcquisitionType") or "").lower()
    hint = f"{acquisition}{_plane(header)}" if acquisition in ("2d", "3d") else _plane(header)
    rest = re.search(r"rest", series.description or "", re.IGNORECASE)
    task = ("rest" if rest else "unknown") if suffix == "bold" else None
    frame = str(_find(header, "FrameOfReferenceUID") or "")
    short = shortfall(series.files, [Written(raw.nifti, raw.dropped_volumes) for raw in outputs])
    staged = []
    for index, raw in enumerate(outputs):
        target = work / f"out-{index}.nii.gz"
        write_clean_gz(raw.nifti, target)
        staged.append(_Staged(series.key, target, filter_sidecar(raw.sidecar), suffix, hint or "x",
                              raw.echo, raw.part, raw.extra, task, raw.extras, frame, series.description, short))
    return staged


def _names(staged: list[_Staged], subject: str, session: str) -> list[str]:
    """BIDS names: `acq-<2d/3d+plane>` when one suffix has different kinds, `run-<n>` for repeats."""
    names: list[str] = [""] * len(staged)
    groups: dict[tuple, list[int]] = {}
    for i, item in enumerate(staged):
        groups.setdefault((item.suffix, item.echo, item.part, item.extra), []).append(i)
    for members in groups.values():
        hints = {staged[i].hint for i in members}
        by_acq: dict[str | None, list[int]] = {}
        for i in members:
            by_acq.setdefault(staged[i].hint if len(hints) > 1 else None, []).append(i)
        for acq, same in by_acq.items():
            for run, i in enumerate(same, start=1):
                item = staged[i]
                acq_label = "".join(filter(None, [acq, item.extra])) or None
                names[i] = bids_name(subject, session, item.suffix, acq=acq_label,
                                     run=run if len(same) > 1 else None, echo=item.echo, part=item.part,
                                     task=item.task)
    return names


def _place(staged: list[_Staged], out_dir: Path, subject: str, session: str) -> list[Converted]:
    """Move staged files to `sub-<s>/ses-<n>/<datatype>/<name>.nii.gz` and write their sidecars."""
    placed = []
    for item, name in zip(staged, _names(staged, subject, session), strict=False):
        folder = subject_dir(out_dir, subject) / f"ses-{session}" / DATATYPE.get(item.suffix, "anat")
        folder.mkdir(parents=True, exist_ok=True)
        nifti, sidecar = folder / f"{name}.nii.gz", folder / f"{name}.json"
        os.replace(item.nifti, nifti)
        sidecar.write_text(json.dumps(item.sidecar, indent=2) + "\n")
        for extra in item.extras if item.suffix == "dwi" else ():  # b-values mean nothing elsewhere
            shutil.copyfile(extra, folder / f"{name}{extra.suffix}")
        kinds = item.sidecar.get("ImageType", [])
        kinds = tuple(str(v) for v in (kinds if isinstance(kinds, list) else [kinds]))
        echo = item.echo or item.sidecar.get("EchoNumber")
        placed.append(Converted(item.series_key, nifti, sidecar, item.suffix, echo, item.part,
                                item.frame_of_reference, kinds, item.description, item.shortfall))
    return placed


def convert_series(series: list[SeriesInput], out_dir: Path, subject: str, session: str = "1",
                   engine: str | Engine = "dcm2niix", cancel: Event | None = None) -> EventStream[list[Result]]:
    """Convert each series (skipping unconvertible ones with a reason); dcm2niix falls back to dicom2nifti."""
    bids_name(subject, session, "T1w")  # validates the labels before any work
    first = get_engine(engine) if isinstance(engine, str) else engine
    engines = [first] + ([Dicom2niftiEngine()] if first.name == "dcm2niix" else [])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".convert-", dir=out_dir))
    yield StepStarted(subject, STEP, total=len(series))
    outcomes: list[list[_Staged] | NotConverted] = []
    try:
        for index, item in enumerate(series):
            if cancel is not None and cancel.is_set():
                yield StepFailed(subject, STEP, "cancelled")
                return []
            outcome = _convert_one(item, engines, work / f"{index:04d}")
            if isinstance(outcome, NotConverted):
                yield StepNote(subject, STEP, f"series {index + 1} skipped: {outcome.reason}")
            outcomes.append(outcome)
            yield StepProgress(subject, STEP, index + 1, len(series), unit="series")
        staged = [s for o in outcomes if not isinstance(o, NotConverted) for s in o]
        placed = iter(_place(staged, out_dir, subject, session))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results: list[Result] = []
    for outcome in outcomes:
        results += [outcome] if isinstance(outcome, NotConverted) else [next(placed) for _ in outcome]
    skipped = sum(isinstance(r, NotConverted) for r in results)
    yield StepFinished(subject, STEP, f"{len(results) - skipped} NIfTI written, {skipped} series skipped")
    return results


def inputs_from_scan(series: Iterable[Series]) -> list[SeriesInput]:
    """SeriesInputs for scanned series (`dicom_scan.Series`), keyed 1, 2, ... in scan order."""
    return [SeriesInput(str(n), list(s.files), s.description, s.modality, s.image_type, set(s.sop_classes))
            for n, s in enumerate(series, 1)]
