"""The job protocol and the input choice of cloud processing (issue 14), without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tui.core.delivery.jobs import Job, JobFile, Result, new_job_id
from tui.core.delivery.processing import choose_inputs, image_role, job_files
from tui.core.delivery.worker import command_line, parse_pipeline
from tui.core.errors import MrishareError


def image(folder: Path, name: str, **sidecar: object) -> Path:
    """A small file named like a converted image, with a JSON sidecar."""
    path = folder / f"{name}.nii.gz"
    path.write_bytes(name.encode() * 10)
    (folder / f"{name}.json").write_text(json.dumps(sidecar), encoding="utf-8")
    return path


def test_job_round_trips_and_holds_only_protocol_fields(tmp_path: Path) -> None:
    t1 = image(tmp_path, "sub-AB12_ses-1_T1w")
    job, files = job_files(new_job_id(), "atlas", "AB12", [(t1, "t1")])
    assert sorted(files) == ["sub-AB12_ses-1_T1w.json", "sub-AB12_ses-1_T1w.nii.gz"]
    assert [(f.name, f.role) for f in job.inputs] == [("sub-AB12_ses-1_T1w.nii.gz", "t1"),
                                                      ("sub-AB12_ses-1_T1w.json", "sidecar")]
    raw = json.loads(job.to_json())
    assert sorted(raw) == ["created", "id", "inputs", "mrishare_version", "pipeline", "pseudonym"]
    assert raw["created"].endswith("+00:00")
    assert Job.from_json(job.to_json(), "job.json") == job


@pytest.mark.parametrize(("change", "message"), [
    ({"id": "../../etc"}, "not a job id"),
    ({"inputs": []}, "lists no inputs"),
    ({"inputs": [{"name": "../x", "role": "t1", "size": 1, "sha256": "0" * 64}]}, "relative path"),
    ({"inputs": [{"name": "x", "role": "t1", "size": 1, "sha256": "abc"}]}, "no valid SHA-256"),
    ({"pipeline": None, "pseudonym": None, "created": None, "mrishare_version": None, "id": None}, "not a job id"),
])
def test_bad_job_files_are_refused(change: dict[str, object], message: str) -> None:
    raw = {"id": new_job_id(), "pipeline": "atlas", "pseudonym": "AB12", "created": "2026-01-01T00:00:00+00:00",
           "mrishare_version": "0.1.0", "inputs": [{"name": "x.nii.gz", "role": "t1", "size": 1, "sha256": "0" * 64}]}
    with pytest.raises(MrishareError, match=message):
        Job.from_json(json.dumps({**raw, **change}), "inbox/x/job.json")


def test_result_status_must_be_done_or_failed() -> None:
    result = Result(new_job_id(), "done", 0, 1.5, "", ("ok",), (), "w1")
    assert Result.from_json(result.to_json(), "r") == result
    with pytest.raises(MrishareError, match="done or failed"):
        Result.from_json(result.to_json().replace('"done"', '"maybe"'), "r")


def test_verify_refuses_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "a.nii.gz"
    path.write_bytes(b"abc")
    described = JobFile.of(path, "a.nii.gz", "t1")
    described.verify(path)
    path.write_bytes(b"abd")
    with pytest.raises(MrishareError, match="SHA-256 differs"):
        described.verify(path)


def test_atlas_takes_the_uni_before_a_plain_t1_and_never_inv_or_phase(tmp_path: Path) -> None:
    plain = image(tmp_path, "sub-UNI1_ses-1_acq-mprage_T1w")  # 'UNI' in the pseudonym must not count
    inv2 = image(tmp_path, "sub-X_ses-1_run-2_T1w", SeriesDescription="mp2rage_INV2")
    uni = image(tmp_path, "sub-X_ses-1_run-3_FLAIR", SeriesDescription="mp2rage_UNI_Images")  # suffix from TR/TI
    converted = [(plain, "T1w"), (inv2, "T1w"), (uni, "FLAIR")]
    assert image_role(plain) == "magnitude" and image_role(inv2) == "inv2"
    assert choose_inputs("atlas", converted, None) == ([(uni, "uni")], [])
    assert choose_inputs("atlas", converted[:2], None) == ([(plain, "t1")], [])
    with pytest.raises(MrishareError, match="atlas pipeline needs a T1-weighted"):
        choose_inputs("atlas", [(inv2, "T1w")], None)


def test_atlas_withholds_an_image_that_was_not_defaced(tmp_path: Path) -> None:
    t1 = image(tmp_path, "sub-X_ses-1_T1w")
    with pytest.raises(MrishareError, match="did not deface"):
        choose_inputs("atlas", [(t1, "T1w")], set())
    assert choose_inputs("atlas", [(t1, "T1w")], {t1}) == ([(t1, "t1")], [])


def test_qsm_takes_magnitude_and_phase_echoes_and_says_what_it_withheld(tmp_path: Path) -> None:
    mags = [image(tmp_path, f"sub-X_ses-1_echo-{e}_T2starw") for e in (1, 2)]
    phases = [image(tmp_path, f"sub-X_ses-1_echo-{e}_part-phase_T2starw") for e in (1, 2)]
    t1 = image(tmp_path, "sub-X_ses-1_T1w")
    converted = [(t1, "T1w"), *[(p, "T2starw") for p in mags + phases]]
    chosen, notes = choose_inputs("qsm", converted, None)
    assert chosen == [(mags[0], "magnitude"), (mags[1], "magnitude"), (phases[0], "phase"), (phases[1], "phase")]
    assert notes == []
    chosen, notes = choose_inputs("qsm", converted, set(mags))  # the deface step defaced the magnitudes only
    assert [role for _, role in chosen] == ["magnitude", "magnitude"]
    assert "withheld 2 image(s)" in notes[0] and "no phase image" in notes[1]


def test_unknown_pipeline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MrishareError, match="chooses inputs for atlas, qsm"):
        choose_inputs("fmri", [], None)


def test_command_line_expands_inputs_to_one_word_each(tmp_path: Path) -> None:
    name, command = parse_pipeline("atlas=python -m demo {inputs} --out={outdir}")
    assert name == "atlas"
    args = command_line(command, [Path("/a b.nii.gz"), Path("/c.nii.gz")], Path("/o"))
    assert args == ["python", "-m", "demo", "/a b.nii.gz", "/c.nii.gz", "--out=/o"]
    for bad in ("atlas", "=x {inputs} {outdir}", "atlas=run {outdir}", "atlas=run {inputs}"):
        with pytest.raises(MrishareError):
            parse_pipeline(bad)
