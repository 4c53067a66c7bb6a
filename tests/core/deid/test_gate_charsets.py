"""pydicom's character-set files (Japanese ISO 2022, Korean, Chinese GB18030/GBK, Greek, Hebrew, Arabic,
Russian, UTF-8, ...): each de-identifies and passes the leak gate, and no name of the input is left.

They are secondary captures and CR, which the quarantine rules hold back by default; this test
runs the engine without those rules (de-identify, write, gate) so that the gate itself is judged.
The defaults stay as they are.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.charset import encode_string
from pydicom.data import get_charset_files
from pydicom.valuerep import PersonName

from tui.core.deid.cleaner import context_for, deidentify_dataset
from tui.core.deid.deidentify import gate_output, quiet_pydicom
from tui.core.deid.file_bytes import serialize
from tui.core.deid.leakcheck import charsets_of
from tui.core.presets import PRESETS

FILES = sorted(get_charset_files("*.dcm"))


def _names(ds: pydicom.Dataset) -> set[str]:
    """Every component (2+ characters) of every person name in `ds`, in each of its groups."""
    parts = set()
    for elem in ds.iterall():
        if elem.VR == "PN" and elem.value:
            for value in (elem.value if elem.VM > 1 else [elem.value]):
                name = PersonName(value) if not isinstance(value, PersonName) else value
                for group in (name.alphabetic, name.ideographic, name.phonetic):
                    parts.update(p.strip() for p in str(group).replace("^", "=").split("=") if len(p.strip()) >= 2)
    return parts


def test_pydicom_ships_the_charset_files() -> None:
    assert len(FILES) == 17


@pytest.mark.parametrize("path", FILES, ids=[Path(f).name for f in FILES])
def test_charset_file_is_released_with_no_name_left(path: str, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setenv("MRISHARE_HOME", str(tmp_path))
    source = Path(path).read_bytes()
    with quiet_pydicom():
        ds = pydicom.dcmread(BytesIO(source), force=True)
        names = _names(ds)
        ctx = context_for([pydicom.dcmread(BytesIO(source), force=True)], PRESETS["participant-copy"].options)
        report = deidentify_dataset(ds, ctx)
        data, pixels = serialize(ds, source)
        assert gate_output(ds, data, pixels, Path("sub-x/0001.dcm"), ctx, report.uids) == []
        out = pydicom.dcmread(BytesIO(data), force=True)
        texts = [str(e.value) for e in out.iterall() if isinstance(e.value, (str, PersonName))]
    encodings = list(charsets_of(out)) or ["latin-1"]
    for name in names:
        assert not any(name.lower() in text.lower() for text in texts), f"a name part is left in {Path(path).name}"
        try:
            encoded = encode_string(name, encodings)
        except (UnicodeEncodeError, LookupError, ValueError):
            continue
        if len(encoded) >= 4:
            assert encoded not in data, f"a name part is left in the bytes of {Path(path).name}"
