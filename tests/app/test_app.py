"""Pilot tests of every flow at 80x24: ledger, folder picker, participant/tags, reveal, mail, settings, help."""

from __future__ import annotations

import dataclasses
import html
import shutil
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pydicom
import pytest
from rich.text import Text
from textual.command import CommandPalette
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Input, OptionList, SelectionList

from tests.app.conftest import FAKE_PASSPHRASE, NOW, SIZE
from tests.app.pilot_helpers import go_to_row, settle
from tests.protocol_pages import copy_with_protocol_page
from tui.app.app import TuiApp
from tui.app.screens.confirm import ConfirmScreen
from tui.app.screens.failure import FailureScreen
from tui.app.screens.folder_picker import FolderPickerScreen
from tui.app.screens.help import HelpScreen
from tui.app.screens.ledger import LedgerScreen, LedgerTable
from tui.app.screens.participant import ParticipantScreen
from tui.app.screens.reveal import RevealScreen
from tui.app.screens.save_path import SavePathScreen
from tui.app.screens.settings import SettingsScreen
from tui.app.widgets.big_words import BigWord, big_lines
from tui.app.widgets.image_preview import ImagePreview
from tui.app.widgets.tag_table import TagGrid, TagTable
from tui.core.delivery.ledger import Ledger


def shown_participants(app: TuiApp) -> list[str]:
    """Participant column of the ledger table, top to bottom."""
    screen = app.ledger_screen
    return [e.participant for e in screen._shown[: screen.query_one(LedgerTable).row_count]]


def cell(grid: TagGrid, row: int, key: str) -> Text:
    """The cell of `row` in the tag grid's column `key` (the columns depend on the width)."""
    return grid.get_cell_at(Coordinate(row, grid.get_column_index(key)))


def study_with_a_cut_t2_slice(demo_study: Path, tmp_path: Path, pick: Callable[[list[Path]], Path]) -> Path:
    """A copy of the demo study in which the slice `pick` chooses from each participant's T2 (the last series) is cut
    to half its length."""
    from tui.core.dicom.scan import scan

    study = tmp_path / "study"
    shutil.copytree(demo_study, study)
    for participant in scan(study).participants:
        cut = pick(list(list(participant.series())[-1].files))
        cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    return study


async def test_ledger_lists_rows_and_scanned_participants(make_app, demo_study: Path) -> None:
    app = make_app(demo_study)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        entries = app.ledger_screen.entries
        assert [e.participant for e in entries if e.row is not None] == ["P0001", "P0002", "P0003", "P0004", "P0005"]
        scanned = [e for e in entries if e.status == "scanned"]
        assert len(scanned) == 2 and all(e.participant.startswith("p-") for e in scanned)
        assert all(e.series == 3 for e in scanned)


async def test_open_folder_with_the_keyboard_picker(make_app, demo_study: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert not [e for e in app.ledger_screen.entries if e.status == "scanned"]
        await pilot.press("o")
        await pilot.pause()
        assert isinstance(app.screen, FolderPickerScreen)
        await pilot.press("tab")
        box = app.screen.query_one("#picker-path", Input)
        box.value = str(demo_study)
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, LedgerScreen)
        assert len([e for e in app.ledger_screen.entries if e.status == "scanned"]) == 2


async def test_folder_tree_enter_picks_the_highlighted_folder(tmp_path: Path) -> None:
    (tmp_path / "a_study").mkdir()
    (tmp_path / "notes.txt").write_text("not a folder")
    picked: list[Path | None] = []
    app = TuiApp()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(FolderPickerScreen(tmp_path), picked.append)
        await pilot.pause(0.3)
        tree = app.screen.query_one("#picker-tree")
        assert [child.label.plain for child in tree.root.children] == ["a_study"]
        await pilot.press("down", "enter")
        await pilot.pause()
    assert picked == [tmp_path / "a_study"]


async def test_filter_sort_and_multi_select(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"shared")
        await pilot.pause()
        assert shown_participants(app) == ["P0001", "P0005"]
        await pilot.press("escape")
        await pilot.pause()
        assert len(shown_participants(app)) == 5
        await pilot.press("escape")  # the filter box is closed: nothing else happens
        await pilot.press("s")
        await pilot.pause()
        assert app.ledger_screen.sort_by == "status"
        assert shown_participants(app)[0] == "P0002"  # failed < revoked < shared < uploaded
        await pilot.press("S")
        await pilot.pause()
        assert shown_participants(app)[0] == "P0004"
        await pilot.press("home", "space", "space")
        await pilot.pause()
        assert app.ledger_screen.marked == {"s0000000004", "s0000000005"}  # uploaded, then shared P0005
        assert "2 selected" in str(app.ledger_screen.query_one("#ledger-status").render())
        await pilot.press("a")
        await pilot.pause()
        assert len(app.ledger_screen.marked) == 5
        await pilot.press("a")
        await pilot.pause()
        assert not app.ledger_screen.marked


async def test_inspect_series_and_toggle_an_option_recolours(make_app, demo_study: Path) -> None:
    app = make_app(demo_study)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.status == "scanned")
        await pilot.press("enter")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ParticipantScreen)
        table = screen.query_one(TagTable)
        # participant-copy preset keeps full dates: StudyDate is K (kept) and its cell is green-ish
        study_date = next(i for i, r in enumerate(table.shown) if r.keyword == "StudyDate")
        grid = screen.query_one(TagGrid)
        assert table.shown[study_date].decision.action == "K"
        kept_style = cell(grid, study_date, "action").style
        # kept: After is the value itself (masked like Value, a date identifies)
        assert cell(grid, study_date, "after").plain == cell(grid, study_date, "value").plain != "emptied"
        await pilot.press("o")
        await pilot.pause()
        # with the options panel open at 80 columns, Act, Value and After still fit beside it
        widths = sum(c.get_render_width(grid) for c in grid.columns.values())
        assert {"action", "value", "after"} <= {str(k.value) for k in grid.columns} and widths <= grid.size.width
        chooser = screen.query_one("#options-list", SelectionList)
        assert "rtn_long_full_dates" in chooser.selected
        chooser.deselect("rtn_long_full_dates")
        await settle(app, pilot)
        row = next(r for r in table.shown if r.keyword == "StudyDate")
        assert row.decision.action != "K"
        index = table.shown.index(row)
        assert cell(grid, index, "action").style != kept_style
        assert cell(grid, index, "action").plain == row.decision.action
        assert cell(grid, index, "after").plain in ("emptied", "removed", "shifted date")


async def test_tag_table_masks_filters_and_shows_only_identifying(make_app, demo_study: Path) -> None:
    app = make_app(demo_study)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.status == "scanned")
        await pilot.press("enter")
        await settle(app, pilot)
        table = app.screen.query_one(TagTable)
        name = next(r for r in table.shown if r.keyword == "PatientName")
        grid = app.screen.query_one(TagGrid)
        shown = cell(grid, table.shown.index(name), "value").plain
        assert name.value and name.value not in shown and "chars" in shown
        assert cell(grid, table.shown.index(name), "after").plain == "pseudonym"
        maker = next(r for r in table.shown if r.keyword == "Manufacturer")
        assert cell(grid, table.shown.index(maker), "value").plain == maker.value  # kept, not identifying: in clear
        await pilot.press("m")
        await pilot.pause()
        assert cell(grid, table.shown.index(name), "value").plain == name.value
        everything = len(table.shown)
        await pilot.press("i")
        await pilot.pause()
        assert 0 < len(table.shown) < everything and all("identifying" in r.flags for r in table.shown)
        await pilot.press("slash", *"patientname")
        await pilot.pause()
        assert [r.keyword for r in table.shown] == ["PatientName"]
        await pilot.press("escape")  # closes the filter first
        await pilot.pause()
        assert isinstance(app.screen, ParticipantScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, LedgerScreen)


async def test_image_preview_slices_planes_and_window(make_app, demo_study: Path) -> None:
    app = make_app(demo_study)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.status == "scanned")
        await pilot.press("enter")
        await settle(app, pilot)
        await pilot.press("down")  # the sagittal T1
        await settle(app, pilot)
        await pilot.press("v")
        await settle(app, pilot)
        preview = app.screen.query_one(ImagePreview)
        assert preview.volume is not None and preview.volume.shape[0] == 176
        start = preview.index
        await pilot.press("up")
        assert preview.index == start + 1
        await pilot.press("p")
        assert preview.plane == 1 and preview.index == preview.volume.shape[1] // 2
        low, high = preview.window
        await pilot.press("w")
        assert preview.window[1] - preview.window[0] < high - low
        await pilot.pause()
        rendered = "".join(seg.text for seg in preview.render_line(preview.size.height // 2))
        assert "▀" in rendered


async def test_dicom_value_with_markup_shows_literally(make_app, demo_study: Path, tmp_path: Path) -> None:
    study = tmp_path / "markup" / "PERSON_A"
    study.mkdir(parents=True)
    source = next((demo_study).rglob("IM-0001-0001.dcm"))
    ds = pydicom.dcmread(source)
    ds.SeriesDescription = "[/bold] [red]x"
    ds.StudyDescription = "[/bold]"
    ds.save_as(study / "one.dcm")
    app = make_app(study.parent)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.status == "scanned")
        await pilot.press("enter")
        await settle(app, pilot)
        await pilot.press("m")
        await pilot.pause()
        screen_text = html.unescape(app.export_screenshot()).replace("\xa0", " ")
        assert "[/bold] [red]x" in screen_text  # the series description, as typed
        table = app.screen.query_one(TagTable)
        assert any(r.value == "[/bold]" for r in table.shown)


async def test_reveal_shows_words_hides_on_key_and_records(make_app, ledger_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("p")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RevealScreen)
        words = FAKE_PASSPHRASE.split("-")
        assert screen.word == words[0]
        assert big_lines(words[0])[1] in str(screen.query_one(BigWord).render())
        await pilot.press("right")
        assert screen.word == words[1]
        await pilot.press("n")
        await pilot.pause()
        assert "Charlie" in str(screen.query_one("#reveal-spelling").render())
        await pilot.press("x")  # any key that is not one of the reveal keys hides it
        await settle(app, pilot)
        assert isinstance(app.screen, LedgerScreen)
        assert screen.word == ""
    with Ledger.open(ledger_path) as ledger:
        row = ledger.get("s0000000001")
        assert row.revealed == NOW and row.communicated is None


async def test_reveal_hides_itself_after_the_timeout(make_app) -> None:
    app = make_app(reveal_seconds=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, RevealScreen)
        await pilot.pause(1.5)
        assert isinstance(app.screen, LedgerScreen)


async def test_reveal_records_communicated_after_confirmation(make_app, ledger_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("p", "c")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert not app.ledger_screen.current.told
        await pilot.press("y")
        await settle(app, pilot)
        assert isinstance(app.screen, LedgerScreen)
        assert app.ledger_screen.current.told == "✓"  # the Told column shows what the ledger recorded
        assert "Told" in html.unescape(app.export_screenshot()).replace("\xa0", " ")
    with Ledger.open(ledger_path) as ledger:
        assert ledger.get("s0000000001").communicated == NOW


async def test_reveal_refuses_a_row_without_passphrase(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.status == "failed")
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, LedgerScreen)


async def test_copy_mail_text_sends_link_never_passphrase(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("c")
        await pilot.pause()
        sent = app.clipboard
        assert "https://cloud.example.org/s/Ab1Cd" in sent
        assert not any(word in sent for word in FAKE_PASSPHRASE.split("-"))


async def test_settings_edit_and_test_connection(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f2")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        screen.query_one("#set-expiry", Input).value = "30"
        screen.query_one("#set-modalities", Input).value = "mr ct"
        await pilot.press("ctrl+t")
        await settle(app, pilot)
        checked = str(screen.query_one("#settings-check").render())
        assert "✓" in checked and "✗" not in checked
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, LedgerScreen)
        assert app.settings.expiry_days == 30
        assert app.settings.modalities == frozenset({"MR", "CT"})


async def test_settings_never_show_the_password(make_app, settings) -> None:
    from dataclasses import replace

    from tui.core.credentials import Credentials

    secret = "app-password-never-shown"
    creds = Credentials(source=Path("x.json"), destination="nextcloud", nextcloud_baseurl="https://h", username="u",
                        password=secret)
    app = make_app(settings=replace(settings, credentials=creds))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f2")
        await pilot.pause()
        assert secret not in app.export_screenshot()


async def test_help_lists_the_keys_of_the_current_screen(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        lines = dict((what, key) for key, what in app.screen.lines)
        assert lines["Filter"] == "/" and lines["Reveal"] == "p" and "Revoke share" in lines
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, LedgerScreen)


async def test_palette_finds_screen_actions(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert CommandPalette.is_open(app)
        await pilot.press(*"revoke")
        await pilot.pause(0.5)
        prompts = [str(o.prompt) for o in app.screen.query_one(OptionList).options]
        assert any("Revoke share" in p for p in prompts)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")


async def test_palette_jumps_to_a_participant(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+p", *"P0004")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert app.ledger_screen.current.participant == "P0004"


@pytest.mark.slow
async def test_batch_runs_one_participant_to_the_folder_destination(make_app, demo_study: Path,
                                                                    ledger_path: Path) -> None:
    app = make_app(demo_study)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.status == "scanned")
        key = app.ledger_screen.current.participant
        folder = str(app.ledger_screen.current.scanned.folder)
        await pilot.press("r", "y")  # r asks first (destination, preset)
        await pilot.pause()
        assert app.screen is app.batch_screen
        await settle(app, pilot)
        line = app.batch_screen.lines[key]
        assert line.state == "done", line.reason
        assert "1/1 done" in str(app.batch_screen.query_one("#batch-summary").render())
        assert app.batch_screen.query_one("#batch-log").lines
        await pilot.press("escape")
        await settle(app, pilot)  # BatchEnded may arrive after the first wait and reload the ledger then
        shared = [e for e in app.ledger_screen.entries if e.participant == key]
        assert [e.status for e in shared] == ["shared"]
    with Ledger.open(ledger_path) as ledger:
        assert [r.status for r in ledger.rows() if r.source_folder == folder] == ["shared"]


@pytest.mark.slow
async def test_quit_mid_run_asks_first(make_app, demo_study: Path, ledger_path: Path, settings) -> None:
    app = make_app(demo_study)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.status == "scanned")
        await pilot.press("r", "y")  # r asks first (destination, preset)
        await pilot.pause()
        assert app.batch_running
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is app.batch_screen and app.batch_running
        await pilot.press("c", "y")
        await settle(app, pilot)
        assert not app.batch_running
        assert "cancelled" in str(app.batch_screen.query_one("#batch-summary").render())
    outbox = Path(settings.destination.removeprefix("folder:"))
    assert not [p for p in outbox.rglob("*") if p.is_file()], "nothing is sent after the app's cancel"
    with Ledger.open(ledger_path) as ledger:
        (row,) = [r for r in ledger.rows() if r.source_folder]
    assert row.status != "shared" and row.last_action.startswith("cancelled during")


async def test_tag_editing_saves_a_copy_with_new_uids(make_app, demo_study: Path, tmp_path: Path) -> None:
    study = tmp_path / "edit" / "PERSON_B" / "loc"
    study.mkdir(parents=True)
    for source in sorted(demo_study.rglob("01_localizer/*.dcm"))[:3]:
        shutil.copy(source, study / source.name)
    originals = {p.name: p.read_bytes() for p in study.iterdir()}
    app = make_app(study.parent.parent)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.status == "scanned")
        await pilot.press("enter")
        await settle(app, pilot)
        screen = app.screen
        table = screen.query_one(TagTable)
        grid = screen.query_one(TagGrid)
        grid.focus()
        grid.move_cursor(row=next(i for i, r in enumerate(table.shown) if r.keyword == "PatientName"))
        await pilot.press("e")
        await pilot.pause()
        app.screen.query_one("#edit-value", Input).value = "Anon^Edited"
        await pilot.press("enter")
        await pilot.pause()
        assert str(cell(grid, grid.cursor_row, "value")) == "✎ Anon^Edited"
        grid.move_cursor(row=next(i for i, r in enumerate(table.shown) if r.keyword == "PatientID"))
        await pilot.press("delete")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)  # PatientID is Type 2 in the MR Image IOD
        await pilot.press("y", "W")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(app, pilot)
        assert not table.edits
    copies = sorted((study.parent / "loc-edited").iterdir())
    assert len(copies) == 3
    for copy in copies:
        ds = pydicom.dcmread(copy)
        assert str(ds.PatientName) == "Anon^Edited" and "PatientID" not in ds
        assert ds.SOPInstanceUID != pydicom.dcmread(study / copy.name).SOPInstanceUID
    assert originals == {p.name: p.read_bytes() for p in study.iterdir()}


async def test_folder_names_stay_hidden_until_asked(make_app, demo_study: Path) -> None:
    app = make_app(demo_study)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        names = sorted(p.name for p in demo_study.iterdir() if p.is_dir())
        screen_text = html.unescape(app.export_screenshot()).replace("\xa0", " ")
        assert not any(name[:12] in screen_text for name in names)
        await pilot.press("N")
        await pilot.pause()
        assert sorted(e.participant for e in app.ledger_screen.entries if e.status == "scanned") == names
        assert "NAMES SHOWN" in str(app.ledger_screen.query_one("#ledger-status").render())


async def test_failure_shows_inline_and_retry_runs_again(make_app, demo_study: Path, settings) -> None:
    from dataclasses import replace

    from tui.app.messages import BatchEnded

    ended: list[BatchEnded] = []
    app = make_app(demo_study, settings=replace(settings, modalities=frozenset({"CT"})))
    async with app.run_test(size=SIZE, message_hook=lambda m: ended.append(m) if isinstance(m, BatchEnded) else None) \
            as pilot:
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.status == "scanned")
        key = app.ledger_screen.current.participant
        await pilot.press("r", "y")  # r asks first (destination, preset)
        await settle(app, pilot)
        assert app.batch_screen.lines[key].state == "failed"
        reason = str(app.batch_screen.query_one("#batch-reason").render())
        assert key in reason and app.batch_screen.lines[key].reason in reason
        await pilot.press("r")
        await settle(app, pilot)
        assert len(ended) == 2 and app.batch_screen.lines[key].state == "failed"


@pytest.mark.slow
async def test_delete_row_revokes_at_once_and_the_next_run_shares_again(make_app, demo_study: Path,
                                                                        ledger_path: Path, settings) -> None:
    outbox = Path(settings.destination.removeprefix("folder:"))
    app = make_app(demo_study)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.status == "scanned")
        key = app.ledger_screen.current.participant
        await pilot.press("r", "y")  # r asks first (destination, preset)
        await settle(app, pilot)
        await pilot.press("escape")
        await settle(app, pilot)
        first = next(e.row for e in app.ledger_screen.entries if e.participant == key)
        assert first.status == "shared" and (outbox / first.remote_path).is_file()
        await go_to_row(app, pilot, lambda e: e.participant == key)
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        text = str(app.screen.query_one("#confirm-text").render())
        assert "stops working" in text and str(outbox) in text and "new passphrase" in text
        await pilot.press("y")
        await settle(app, pilot)
        assert not (outbox / first.remote_path).exists()
        assert [e.status for e in app.ledger_screen.entries if e.participant == key] == ["scanned"]
        on_disk = [row[0] for row in openpyxl.load_workbook(ledger_path)["shares"].iter_rows(values_only=True)]
        assert first.id not in on_disk and "s0000000001" in on_disk
        await go_to_row(app, pilot, lambda e: e.participant == key)
        await pilot.press("r", "y")  # r asks first (destination, preset)
        await settle(app, pilot)
        await pilot.press("escape")
        await settle(app, pilot)
        second = next(e.row for e in app.ledger_screen.entries if e.participant == key)
        assert second.status == "shared" and second.id != first.id
        assert second.passphrase != first.passphrase and (outbox / second.remote_path).is_file()
    with Ledger.open(ledger_path) as ledger:
        assert ledger.get(first.id) is None and ledger.get(second.id) is not None


async def test_delete_row_is_offered_in_help_and_can_be_cancelled(make_app, ledger_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert "Delete row to share again" in {what: key for key, what in app.screen.lines}
        await pilot.press("escape")
        await go_to_row(app, pilot, lambda e: e.participant == "P0002")
        await pilot.press("d")
        await pilot.pause()
        text = str(app.screen.query_one("#confirm-text").render())
        assert "Nothing of it was uploaded" in text
        await pilot.press("n")
        await settle(app, pilot)
    with Ledger.open(ledger_path) as ledger:
        assert ledger.get("s0000000002") is not None


async def test_settings_are_kept_for_the_next_start(ledger_path: Path, mrishare_home: Path) -> None:
    from tui.app.services import Services

    def start() -> TuiApp:
        return TuiApp(Services(ledger_path=ledger_path, clock=lambda: NOW))  # settings: the saved defaults

    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.settings.expiry_days == 14 and app.settings.language == "en"
        await pilot.press("f2")
        await pilot.pause()
        app.screen.query_one("#set-expiry", Input).value = "30"
        app.screen.query_one("#set-language").value = "de"
        await pilot.press("ctrl+o")
        await settle(app, pilot)
    saved = mrishare_home / "config" / "settings.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    again = start()
    async with again.run_test(size=SIZE) as pilot:
        await settle(again, pilot)
        assert again.settings.expiry_days == 30 and again.settings.language == "de"
        await pilot.press("f2")
        await pilot.pause()
        assert again.screen.query_one("#set-expiry", Input).value == "30"


async def test_lab_and_study_are_set_on_the_settings_screen_and_kept(ledger_path: Path, mrishare_home: Path) -> None:
    import json

    from tui.app.services import Services

    def start() -> TuiApp:
        return TuiApp(Services(ledger_path=ledger_path, clock=lambda: NOW, check_links=False))

    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f2")
        await pilot.pause()
        app.screen.query_one("#set-lab-contact", Input).value = "x" * 201
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)  # refused before the form closes, and said why
        assert any("lab_contact must be one line of text (at most 200" in n.message for n in app._notifications)
        app.screen.query_one("#set-lab-name", Input).value = "  MRT-Labor Musterstadt "
        app.screen.query_one("#set-lab-contact", Input).value = "mrt@example.org"
        app.screen.query_one("#set-study-name", Input).value = "Gedächtnis-Studie"
        await pilot.press("ctrl+o")
        await settle(app, pilot)
        assert isinstance(app.screen, LedgerScreen)
        assert (app.settings.lab_name, app.settings.study_name) == ("MRT-Labor Musterstadt", "Gedächtnis-Studie")
    saved = json.loads((mrishare_home / "config" / "settings.json").read_text())
    assert (saved["lab_name"], saved["lab_contact"], saved["study_name"]) == (
        "MRT-Labor Musterstadt", "mrt@example.org", "Gedächtnis-Studie")
    again = start()
    async with again.run_test(size=SIZE) as pilot:
        await settle(again, pilot)
        await pilot.press("f2")
        await pilot.pause()
        assert again.screen.query_one("#set-lab-contact", Input).value == "mrt@example.org"


async def test_a_broken_settings_file_is_named_and_the_app_still_starts(ledger_path: Path,
                                                                        mrishare_home: Path) -> None:
    from tui.app.services import Services

    saved = mrishare_home / "config" / "settings.json"
    saved.write_text('{"expiry": 30}')
    app = TuiApp(Services(ledger_path=ledger_path, clock=lambda: NOW))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        messages = [n.message for n in app._notifications]
        assert any(str(saved) in m and "unknown setting 'expiry'" in m for m in messages)
        assert app.settings.destination.startswith("folder:")


async def test_protocol_page_is_flagged_with_its_reason_and_the_list_is_editable(
        make_app, shared_data: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    copy_with_protocol_page(shared_data, study / "participant")
    app = make_app(study)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.status == "scanned")
        await pilot.press("enter")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ParticipantScreen)
        index = next(i for i, s in enumerate(screen.series) if s.number == 99)
        series_table = screen.query_one("#series-table")
        assert "Q" in series_table.get_cell_at((index, 6)).plain
        assert all("Q" not in series_table.get_cell_at((i, 6)).plain for i in range(len(screen.series)) if i != index)
        series_table.move_cursor(row=index)
        await settle(app, pilot)
        title = screen.query_one(TagTable).border_title
        assert title == "Tags · series 99 MR · withheld: protocol/report page (Patient Protocol)"
        await pilot.press("escape")
        await settle(app, pilot)
        await pilot.press("f2")
        await pilot.pause()
        pages = app.screen.query_one("#set-protocol-pages", Input)
        assert pages.value == "Patient Protocol, PhoenixZIPReport, Dose Report, Screen Save, Exam Summary"
        pages.value = "Dose Report, Scout Report"
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert app.settings.protocol_pages == ("Dose Report", "Scout Report")
        await pilot.press("enter")
        await settle(app, pilot)
        assert "Q" not in app.screen.query_one("#series-table").get_cell_at((index, 6)).plain


async def test_save_pseudonym_list_from_the_ledger(make_app, settings, shared_data: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    shutil.copytree(shared_data / "realworld/siemens_orientation_2slice", study / "orient")
    shutil.copytree(shared_data / "head-mri/siemens_prisma_xa30_mprage_2mm", study / "xa30")
    app = make_app(study, settings=dataclasses.replace(settings, pseudonym="adit-upload:Neuroradiologie"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        for where, saved in ((tmp_path / "outbox" / "list.csv", False), (tmp_path / "mine" / "list.csv", True)):
            await pilot.press("L")
            await pilot.pause()
            assert isinstance(app.screen, SavePathScreen)
            app.screen.query_one("#save-path", Input).value = str(where)
            await pilot.press("enter")
            await pilot.pause()
            assert where.exists() is saved
        # printf '%-64s%-64s' 'Neuroradiologie' 'crlab' | openssl dgst -sha3-256  (and '12343@hucheng')
        assert sorted(where.read_text(encoding="utf-8").splitlines()) == [
            "12343@hucheng,a3b9a4098bdeae6caa0a1064bb49649b82791f670d2814dc1a0e3d6fc596c1ef",
            "PatientID,Pseudonym",
            "crlab,9bcc9d465957605b1d7da9cd1179858f3f6a798c6369562b6de9e4cc7dda2675"]
        assert where.stat().st_mode & 0o777 == 0o600


async def test_nested_elements_are_edited_added_and_deleted(make_app, shared_data: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    shutil.copytree(shared_data / "realworld/siemens_orientation_2slice", study / "orient")
    app = make_app(study)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.status == "scanned")
        await pilot.press("enter")
        await settle(app, pilot)
        screen = app.screen
        series = screen.current_series
        table, grid = screen.query_one(TagTable), screen.query_one(TagGrid)
        grid.focus()

        def go(path: str) -> None:
            grid.move_cursor(row=next(i for i, r in enumerate(table.shown) if r.path == path))

        go("(0008,1140)[0](0008,1155)")
        await pilot.press("e")
        await pilot.pause()
        title = str(app.screen.query_one("#edit-title").render())
        assert "ReferencedImageSequence[0].ReferencedSOPInstanceUID" in title
        app.screen.query_one("#edit-value", Input).value = "1.2.3.4"
        await pilot.press("enter")
        await pilot.pause()
        assert cell(grid, grid.cursor_row, "value").plain == cell(grid, grid.cursor_row, "after").plain == "✎ 1.2.3.4"
        go("(0008,1140)[0](0008,1150)")
        await pilot.press("delete")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)  # Type 1 in the SOP Instance Reference Macro
        assert "SOP Instance Reference Macro" in str(app.screen.query_one("#confirm-title").render())
        await pilot.press("y")
        await pilot.pause()
        await pilot.press("plus")
        await pilot.pause()
        assert "Add an element in ReferencedImageSequence[0]" in str(app.screen.query_one("#edit-title").render())
        app.screen.query_one("#edit-tag", Input).value = "ReferencedFrameNumber"
        app.screen.query_one("#edit-value", Input).value = "1"
        app.screen.query_one("#edit-value", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert [e.path for e in table.edits] == ["(0008,1140)[0](0008,1155)", "(0008,1140)[0](0008,1150)",
                                                 "(0008,1140)[0](0008,1160)"]
        await pilot.press("W")
        await pilot.pause()
        await pilot.press("y")
        await settle(app, pilot)
        assert not table.edits
    source = Path(series.files[0]).parent
    copies = sorted((source.parent / f"{source.name}-edited").iterdir())
    assert len(copies) == len(series.files)
    for copy in copies:
        item = pydicom.dcmread(copy).ReferencedImageSequence[0]
        assert item.ReferencedSOPInstanceUID == "1.2.3.4" and "ReferencedSOPClassUID" not in item
        assert item.ReferencedFrameNumber == 1
        assert pydicom.dcmread(copy).SOPInstanceUID != pydicom.dcmread(source / copy.name).SOPInstanceUID


@pytest.mark.slow
async def test_batch_shows_a_partly_shared_participant(make_app, demo_study: Path, tmp_path: Path) -> None:
    """Issue 21.1 in the TUI: a damaged slice withholds its series; the line and the summary say 'partly'."""

    # a middle slice of each participant's T2 (the last series)
    app = make_app(study_with_a_cut_t2_slice(demo_study, tmp_path, lambda slices: slices[len(slices) // 2]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.status == "scanned")
        key = app.ledger_screen.current.participant
        await pilot.press("r", "y")  # r asks first (destination, preset)
        await settle(app, pilot)
        line = app.batch_screen.lines[key]
        assert line.state == "partly", line.reason
        assert line.partial.startswith("partly shared: withheld series")
        assert "1 partly shared" in str(app.batch_screen.query_one("#batch-summary").render())
        assert "partly shared: withheld series" in str(app.batch_screen.query_one("#batch-reason").render())


@pytest.mark.slow
async def test_a_withheld_series_released_in_the_participant_screen_is_shared_with_its_gap(
        make_app, demo_study: Path, tmp_path: Path, ledger_path: Path) -> None:
    """Issue 21.1, per series: A on an incomplete series shares it anyway (the gap recorded), for that series only."""

    # the last slice of each participant's T2 (the last series): the rest still converts (a middle gap would not)
    app = make_app(study_with_a_cut_t2_slice(demo_study, tmp_path, lambda slices: slices[-1]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.status == "scanned")
        key = app.ledger_screen.current.participant
        await pilot.press("enter")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ParticipantScreen)
        gapped = next(i for i, s in enumerate(screen.series) if s.problems)
        screen.query_one("#series-table", DataTable).move_cursor(row=gapped)
        await pilot.pause()
        await pilot.press("A")
        await pilot.pause()
        flags = screen.query_one("#series-table", DataTable).get_cell(screen.series[gapped].key, "flags")
        assert "GR" in str(flags)
        await pilot.press("escape")
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.participant == key)
        await pilot.press("r", "y")
        await settle(app, pilot)
        line = app.batch_screen.lines[key]
        assert line.state == "done" and not line.partial, line.partial
    with Ledger.open(ledger_path) as ledger:
        [row] = [r for r in ledger.rows() if r.status == "shared" and r.note]
    assert row.note.startswith("incomplete series released on request: series"), row.note


def test_series_flags_mark_an_incomplete_series(shared_data: Path, tmp_path: Path) -> None:
    from tui.app.screens.participant import series_flags
    from tui.core.dicom.scan import scan

    series = tmp_path / "series"
    shutil.copytree(shared_data / "multivendor/siemens_prisma_t1_fl2d_sag_35sl/dicom", series)
    [whole] = scan(series, as_participant=True).participants[0].series()
    assert "G" not in series_flags(whole, {})
    next(series.glob("0018_*.dcm")).unlink()
    [gapped] = scan(series, as_participant=True).participants[0].series()
    assert "G" in series_flags(gapped, {})


def mixed_folder(shared_data: Path, root: Path) -> Path:
    """A participant folder with the real 35-slice Prisma series and 20 slices of another patient (a whole
    series of 20: without the private protocol header that declares 35)."""
    folder = root / "study" / "mixed"
    folder.mkdir(parents=True)
    study_uid, series_uid = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    for n, path in enumerate(sorted((shared_data / "multivendor/siemens_prisma_t1_fl2d_sag_35sl/dicom").iterdir())):
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.PatientID = "Testperson^Erika", "TP123456"
        ds.save_as(folder / path.name)
        if n < 20:
            ds.PatientName, ds.PatientID = "Anders^Max", "XY987654"
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SeriesNumber = study_uid, series_uid, 99
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
            del ds[0x0029, 0x1020]  # the Siemens protocol would declare 35 slices: 20 would be an incomplete series
            ds.save_as(folder / f"other-{path.name}")
    return folder.parent


@pytest.mark.slow
async def test_mixed_patients_fail_until_one_is_chosen_in_the_participant_screen(
        make_app, shared_data: Path, tmp_path: Path, ledger_path: Path) -> None:
    """Issue 21.2 in the TUI: a folder with two patients is an error; P picks one, then it shares."""
    app = make_app(mixed_folder(shared_data, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.status == "scanned")
        key = app.ledger_screen.current.participant
        await pilot.press("r", "y")  # r asks first (destination, preset)
        await settle(app, pilot)
        assert "2 patients in one participant folder (35 + 20 files)" in app.batch_screen.lines[key].reason
        await pilot.press("escape")
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.scanned is not None)
        await pilot.press("enter")  # a failed row opens its failure first; i inspects the participant
        await settle(app, pilot)
        assert isinstance(app.screen, FailureScreen)
        assert "then P to choose the patient" in str(app.screen.query_one("#failure-next").render())
        await pilot.press("i")
        await settle(app, pilot)
        assert isinstance(app.screen, ParticipantScreen)
        await pilot.press("P")
        await pilot.pause()
        await pilot.press("down", "enter")  # patient 2: the 20 files
        await pilot.pause()
        participant = app.screen.participant
        assert participant.chosen and participant.patients[0].files == 20 and len(participant.misfiled) == 35
        await pilot.press("escape", "escape")  # the participant, then the failure
        await settle(app, pilot)
        await go_to_row(app, pilot, lambda e: e.scanned is not None)
        await pilot.press("r", "y")  # r asks first (destination, preset)
        await settle(app, pilot)
        assert app.batch_screen.lines[key].state == "done", app.batch_screen.lines[key].reason


def test_reveal_countdown_reads_in_minutes_until_the_last_two() -> None:
    from tui.app.screens.reveal import hides_in

    assert [hides_in(s) for s in (3600, 3599, 121, 120, 119, 5)] == [
        "60 min", "60 min", "3 min", "2 min", "119 s", "5 s"]
