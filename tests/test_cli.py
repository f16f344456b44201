"""The `photoseek` command as a script or a person uses it: JSON lines, many queries from
standard input, and clear messages (each said once) with the documented exit codes."""

from __future__ import annotations

import io
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from tests.conftest import damage, solid


@pytest.fixture
def db(tmp_path: Path, tiny_bundle: Path, rgb_folder: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    (rgb_folder / "notes.jpg").write_text("not a photo")
    options = ["--db", str(tmp_path / "lib.sqlite3"), "--device", "cpu"]
    assert main(["models", "use", str(tiny_bundle), *options]) == 0
    assert main(["index", str(rgb_folder), *options]) == 0
    capsys.readouterr()
    return options


def test_json_lines_carry_path_score_caption_and_query(db, rgb_folder, capsys):
    assert main(["search", "red", *db, "--json", "--cutoff", "-1"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(h["path"]).name for h in hits] == ["red.jpg", "green.png", "blue.jpg"]
    assert all(Path(h["path"]).is_absolute() and h["query"] == "red" for h in hits)
    assert all(isinstance(h["score"], float) and isinstance(h["caption"], str) for h in hits)
    assert hits[0]["score"] > hits[1]["score"]


def test_queries_from_standard_input_are_answered_in_one_run(db, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("red\n\n  \n-blue\nblue\n"))
    # A query made only of things to avoid is refused; the others are answered; blank lines skipped.
    assert main(["search", "-", *db, "--json", "--limit", "1"]) == 2
    captured = capsys.readouterr()
    hits = [json.loads(line) for line in captured.out.splitlines()]
    assert [(h["query"], Path(h["path"]).name) for h in hits] == [("red", "red.jpg"), ("blue", "blue.jpg")]
    assert captured.err.strip() == "-blue: a query needs something to look for, not only things to avoid"


@pytest.mark.parametrize("query", ["", "   "])
def test_an_empty_query_is_an_error_not_silence(db, capsys, query):
    assert main(["search", query, *db]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip() == "photoseek: empty query"


def test_a_missing_photo_is_named_once(db, tmp_path, capsys):
    missing = tmp_path / "nowhere.jpg"
    assert main(["search", f"like:{missing}", *db]) == 2
    assert capsys.readouterr().err.strip() == f"photoseek: like:{missing}: no such photo in the library or on disk"
    assert main(["caption", str(missing), *db]) == 1
    assert capsys.readouterr().err.strip() == f"{missing}: no such photo"
    assert main(["caption", str(tmp_path), *db]) == 1
    assert capsys.readouterr().err.strip() == f"{tmp_path}: a folder, not a photo (`photoseek index` indexes a folder)"


def test_status_lists_the_unreadable_file_with_its_reason(db, rgb_folder, capsys):
    assert main(["status", *db, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["photos"], info["indexed"], info["failed"], info["pending"]) == (4, 3, 1, 0)
    [failure] = info["failures"]
    assert failure["path"] == str(rgb_folder / "notes.jpg") and "text file" in failure["reason"]
    assert main(["caption", str(rgb_folder / "notes.jpg"), *db]) == 1
    assert "text file" in capsys.readouterr().err


def test_search_leaves_out_photos_no_longer_on_disk(db, rgb_folder, tmp_path, capsys):
    (rgb_folder / "red.jpg").unlink()
    assert main(["search", f"like:{rgb_folder / 'red.jpg'}", *db]) == 2
    assert capsys.readouterr().err.strip() == f"photoseek: like:{rgb_folder / 'red.jpg'}: no longer on disk"
    assert main(["search", "red", *db, "--cutoff", "-1", "--limit", "2", "--paths-only"]) == 0
    captured = capsys.readouterr()
    shown = captured.out.splitlines()
    assert len(shown) == 2 and str(rgb_folder / "red.jpg") not in shown  # the next best take its place
    assert "left out 1 photo no longer on disk: deleted, or on a drive not connected" in captured.err
    # The whole folder gone (an unplugged drive: the next scan marks it offline) shows nothing.
    rgb_folder.rename(tmp_path / "unplugged")
    assert main(["search", "green", *db, "--cutoff", "-1", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "green: no photo that matched is on disk now" in captured.err
    assert "left out 3 photos no longer on disk" in captured.err  # red, green and blue


def test_search_finds_the_photos_of_a_drive_plugged_in_again_before_the_next_scan(db, rgb_folder, tmp_path, capsys):
    away = tmp_path / "unplugged"
    rgb_folder.rename(away)
    assert main(["index", *db]) == 0  # the scan finds the folder gone: offline, its photos kept
    away.rename(rgb_folder)  # plugged in again; no scan since
    capsys.readouterr()
    assert main(["search", "red", *db, "--cutoff", "-1", "--paths-only"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == str(rgb_folder / "red.jpg") and captured.err == ""
    rgb_folder.rename(away)
    assert main(["search", "red", *db, "--cutoff", "-1"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "folders are offline (a drive not connected?)" in captured.err
    assert "left out 3 photos no longer on disk" in captured.err


def test_search_lists_photos_in_a_folder_it_cannot_look_into(db, rgb_folder, capsys, monkeypatch):
    from pathlib import Path

    real = Path.stat

    def refuse(self, *args, **kwargs):  # as a folder without permission (the tests may run as root)
        if self.parent.name == "sub":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", refuse)
    monkeypatch.setattr("sys.stdin", io.StringIO("blue\nred\n"))
    assert main(["search", "-", *db, "--cutoff", "-1", "--paths-only"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out.count(str(rgb_folder / "sub" / "blue.jpg")) == 2  # in both answers
    assert len(out) == 6 and not [line for line in out if line.startswith("#")]  # paths only, no queries


def test_a_folder_that_cannot_be_read_stays_listed_until_it_can(db, rgb_folder, capsys, monkeypatch):
    import os

    real = os.scandir
    sub = str(rgb_folder / "sub")

    def refuse(path="."):  # as a folder without read permission (the tests may run as root)
        if os.fspath(path) == sub:
            raise PermissionError(13, "Permission denied", sub)
        return real(path)

    monkeypatch.setattr(os, "scandir", refuse)
    assert main(["index", str(rgb_folder), *db]) == 0
    assert "cannot look into the folder: permission denied" in capsys.readouterr().err
    assert main(["status", *db, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["unreadable"] == [{"path": sub, "reason": "cannot look into the folder: permission denied"}]
    assert info["photos"] == 4  # blue.jpg, found before, is kept
    assert main(["status", *db]) == 0
    assert f"  {sub}: cannot look into the folder: permission denied" in capsys.readouterr().out.splitlines()
    monkeypatch.setattr(os, "scandir", real)
    assert main(["index", str(rgb_folder), *db]) == 0
    assert main(["status", *db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unreadable"] == []


@pytest.mark.parametrize("limit", ["0", "-3", "ten"])
def test_a_limit_below_one_is_refused(db, capsys, limit):
    with pytest.raises(SystemExit) as exit_:
        main(["search", "red", *db, "--limit", limit])
    assert exit_.value.code == 2 and "--limit" in capsys.readouterr().err


def test_reading_commands_do_not_make_a_library_where_there_is_none(tmp_path, tiny_bundle, rgb_folder, capsys):
    missing = tmp_path / "typo" / "lib.sqlite3"
    options = ["--db", str(missing), "--device", "cpu", "--model", str(tiny_bundle)]
    for command in (["search", "red"], ["status"]):
        assert main([*command, *options]) == 1
        message = f"photoseek: no library at {missing}: `photoseek index FOLDER` makes one"
        assert capsys.readouterr().err.strip() == message
    # A caption and the installation check need no library: they work, and still make none.
    assert main(["caption", str(rgb_folder / "red.jpg"), *options]) == 0
    assert capsys.readouterr().out.strip()
    assert main(["doctor", *options]) == 0
    assert f"library: {missing} (none yet)" in capsys.readouterr().out
    assert not missing.parent.exists()


def test_a_closed_pipe_ends_the_output_quietly(db):
    # `photoseek search red | head -1`: the reader is gone before the results are written.
    repo = Path(__file__).resolve().parents[1]
    child = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "search", "red", *db, "--cutoff", "-1"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    child.stdout.close()
    _, err = child.communicate(timeout=120)
    assert child.returncode == 141 and b"Traceback" not in err, err.decode()


def test_the_watcher_stops_cleanly_when_terminated(db):
    # A service manager or `kill` sends SIGTERM: the watcher stops as with Ctrl+C, exit code 0.
    repo = Path(__file__).resolve().parents[1]
    child = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "watch", *db],
        cwd=repo,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stderr is not None
    lines = []
    while not any("photos found" in line for line in lines):  # the first scan is done
        line = child.stderr.readline()
        assert line, f"the watcher ended early: {lines}"
        lines.append(line)
    child.send_signal(signal.SIGTERM)
    rest = child.stderr.read()
    assert child.wait(timeout=60) == 0
    assert "stopping..." in rest and "Traceback" not in rest


def test_indexing_progress_ends_with_one_line_and_a_summary(tmp_path, tiny_bundle, rgb_folder, capsys):
    options = ["--db", str(tmp_path / "lib.sqlite3"), "--device", "cpu", "--model", str(tiny_bundle)]
    assert main(["index", str(rgb_folder), *options, "--no-text"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert sum(line.startswith("3/3 photos") for line in err) == 1, err
    assert err[-1].startswith("3 photos found; 3 new; 0 changed; 0 removed; 3 indexed")
    assert main(["index", *options, "--no-text"]) == 0  # nothing to do: no progress line at all
    [summary] = capsys.readouterr().err.splitlines()
    assert summary.startswith("3 photos found; 0 new; 0 changed; 0 removed; 0 indexed, 0 reused, 0 failed in ")
    (rgb_folder / "copy.jpg").write_bytes((rgb_folder / "red.jpg").read_bytes())  # reused, not indexed
    assert main(["index", *options, "--no-text"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert sum(line.startswith("1/1 photo (") for line in err) == 1, err


def test_the_summary_gives_the_whole_run_time_where_it_is_more_than_the_indexing():
    from engine.cli import _print_sync
    from engine.ingest.pipeline import IndexReport
    from engine.library import SyncReport

    report = SyncReport(found=1, new=1, index=IndexReport(total=1, embedded=1, seconds=1.25), text_found=1)
    out = io.StringIO()
    _print_sync(report, out, seconds=7.5)  # the second pass (text and faces) took the rest
    assert (
        out.getvalue() == "1 photo found; 1 new; 0 changed; 0 removed; 1 indexed, 0 reused, 0 failed in 1.2s; "
        "text found in 1; 7.5s in all\n"
    )
    out = io.StringIO()
    _print_sync(report, out, seconds=1.3)
    assert not out.getvalue().rstrip().endswith("in all")


def test_the_built_in_model_of_a_library_is_not_removed_unasked(tmp_path, tiny_bundle, capsys):
    import shutil
    import sqlite3

    from engine import paths
    from engine.library import Library

    builtin = paths.models_dir() / "photoseek-builtin"
    shutil.copytree(tiny_bundle, builtin)  # stands in for the built bundle: only its folder name counts
    db = tmp_path / "lib.sqlite3"
    Library(db).close()  # a library that chose no model uses the built-in one
    assert main(["models", "remove", "photoseek-builtin", "--db", str(db)]) == 2
    assert "is in use by" in capsys.readouterr().err and builtin.is_dir()
    # Chosen by name ("models use builtin" records it so), the same bundle.
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('model', 'builtin')")
    conn.close()
    for name in ("photoseek-builtin", "builtin"):
        assert main(["models", "remove", name, "--db", str(db)]) == 2
        assert "is in use by" in capsys.readouterr().err and builtin.is_dir()
    assert main(["models", "remove", "photoseek-builtin", "--db", str(db), "--force"]) == 0
    assert not builtin.exists()


def test_models_list_gives_each_download_one_size(tmp_path, capsys):
    """The size column and the costs line below it agree, for every model the catalogue offers."""
    import re

    from engine.models.catalogue import catalogue

    assert main(["models", "list", "--db", str(tmp_path / "lib.sqlite3")]) == 0
    listing = capsys.readouterr().out
    for name in catalogue():
        pattern = rf"^  {re.escape(name)} .*?(~?)(\d+) MB .*\n.*costs: (about )?([\d,]+) MB download"
        row = re.search(pattern, listing, re.M)
        assert row, f"{name} not listed with a size:\n{listing}"
        assert row[2] == row[4].replace(",", ""), row[0]
        assert bool(row[1]) == bool(row[3]), row[0]  # both estimates, or both exact


def _caption(path: Path | str, db: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["caption", str(path), *db])
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err.strip()


def test_a_relative_path_is_the_file_here_before_a_library_photo_of_that_name(
    db, rgb_folder, tmp_path, capsys, monkeypatch
):
    blue = _caption(rgb_folder / "sub" / "blue.jpg", db, capsys)[1]
    red = _caption(rgb_folder / "red.jpg", db, capsys)[1]
    assert blue != red
    here = tmp_path / "here"
    solid(here / "red.jpg", (20, 30, 220))  # a blue photo that happens to be called red.jpg
    monkeypatch.chdir(here)
    assert _caption("red.jpg", db, capsys)[1] == blue
    assert _caption("./red.jpg", db, capsys)[1] == blue
    assert main(["search", "like:red.jpg", *db, "--json", "--limit", "1"]) == 0
    assert Path(json.loads(capsys.readouterr().out)["path"]).name == "blue.jpg"
    # No such file here: a path relative to a library folder.
    assert _caption("sub/blue.jpg", db, capsys)[1] == blue


def test_a_photo_changed_or_removed_since_indexing_is_not_answered_from_the_library(db, rgb_folder, capsys):
    blue = _caption(rgb_folder / "sub" / "blue.jpg", db, capsys)[1]
    red = rgb_folder / "red.jpg"
    assert _caption(red, db, capsys)[1] != blue
    solid(red, (20, 30, 220), size=(80, 60))  # now a blue photo (another size: the change shows)
    assert _caption(red, db, capsys)[1] == blue
    assert main(["search", f"like:{red}", *db, "--json", "--limit", "1"]) == 0
    assert Path(json.loads(capsys.readouterr().out)["path"]).name == "blue.jpg"
    (rgb_folder / "green.png").unlink()
    assert _caption(rgb_folder / "green.png", db, capsys) == (1, "", f"{rgb_folder / 'green.png'}: no such photo")


def test_a_symlink_loop_is_no_such_photo(db, rgb_folder, capsys):
    loop = rgb_folder / "loop.jpg"
    loop.symlink_to(loop)
    assert _caption(loop, db, capsys) == (1, "", f"{loop}: no such photo")
    assert main(["search", f"like:{loop}", *db]) == 2
    assert "no such photo" in capsys.readouterr().err


def test_a_cutoff_given_applies_to_every_query(db, rgb_folder, capsys):
    like = f"like:{rgb_folder / 'red.jpg'}"
    assert main(["search", like, *db, "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2  # the model's cutoff is for descriptions only
    assert main(["search", like, *db, "--json", "--cutoff", "0.9999"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no similar photo found" in captured.err


def test_a_query_that_is_not_utf8_is_answered_and_the_batch_goes_on(db, capsys, monkeypatch):
    # A query file saved as Latin-1: Python keeps the byte that is not UTF-8 as a lone surrogate.
    stdin = io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbfred caf\xe9\nblue\n"), encoding="utf-8", errors="surrogateescape")
    monkeypatch.setattr("sys.stdin", stdin)
    assert main(["search", "-", *db, "--json", "--limit", "1"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(h["path"]).name for h in hits] == ["red.jpg", "blue.jpg"]
    assert hits[0]["query"].startswith("red caf")  # the byte-order mark is not part of the query


def test_json_keeps_a_file_name_that_is_not_utf8(tmp_path, tiny_bundle, capsys):
    folder = tmp_path / "photos"
    name = os.fsdecode(b"caf\xe9.jpg")
    solid(folder / "red.jpg", (220, 20, 20)).rename(folder / name)
    options = ["--db", str(tmp_path / "lib.sqlite3"), "--device", "cpu", "--model", str(tiny_bundle)]
    assert main(["index", str(folder), *options]) == 0
    capsys.readouterr()
    assert main(["search", "red", *options, "--json", "--cutoff", "-1"]) == 0
    line = capsys.readouterr().out.strip()
    line.encode("utf-8")  # valid UTF-8 output ...
    assert os.fsencode(json.loads(line)["path"]) == os.fsencode(folder / name)  # ... that names the file


def test_workers_below_one_are_refused(db, rgb_folder, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["index", str(rgb_folder), *db, "--workers", "-3"])
    assert exit_.value.code == 2 and "--workers" in capsys.readouterr().err


def test_a_batch_answers_each_query_before_the_next_arrives(db):
    # A script sends a query and waits for its answer before it sends the next one.
    repo = Path(__file__).resolve().parents[1]
    child = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "search", "-", *db, "--json", "--limit", "1"],
        cwd=repo,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        child.stdin.write("red\n")
        child.stdin.flush()
        ready, _, _ = select.select([child.stdout], [], [], 120)
        assert ready, "no answer while standard input is still open"
        assert Path(json.loads(child.stdout.readline())["path"]).name == "red.jpg"
    finally:
        child.stdin.close()
        err = child.stderr.read() if child.stderr else ""
        child.wait(timeout=120)
    assert child.returncode == 0, err


def test_index_without_a_folder_makes_no_library_and_names_what_is_missing(tmp_path, tiny_bundle, capsys):
    db = tmp_path / "new.sqlite3"
    options = ["--db", str(db), "--device", "cpu", "--model", str(tiny_bundle)]
    assert main(["index", *options]) == 1
    assert "`photoseek index FOLDER` makes one" in capsys.readouterr().err and not db.exists()
    assert main(["caption", "", *options]) == 1
    assert capsys.readouterr().err.strip() == "'': no path given"


def test_a_file_name_with_a_newline_stays_on_one_line_and_paths_only_gives_it_as_it_is(
    tmp_path, tiny_bundle, capsysbinary
):
    folder = tmp_path / "photos"
    odd = folder / "two\nlines \udcff.jpg"  # a newline, and a byte that is no UTF-8
    solid(folder / "red.jpg", (220, 20, 20)).rename(odd)
    options = ["--db", str(tmp_path / "lib.sqlite3"), "--device", "cpu", "--model", str(tiny_bundle)]
    assert main(["index", str(folder), *options]) == 0
    capsysbinary.readouterr()
    assert main(["search", "red", *options, "--cutoff", "-1"]) == 0
    [line, _caption] = capsysbinary.readouterr().out.splitlines()
    assert line.endswith(b"/two\\nlines \xff.jpg")  # for people: one line a photo
    # For other programs: the name exactly (not one that does not exist), NUL-ended with --null.
    assert main(["search", "red", *options, "--cutoff", "-1", "--paths-only"]) == 0
    assert capsysbinary.readouterr().out == os.fsencode(odd) + b"\n"
    assert main(["search", "red", *options, "--cutoff", "-1", "--null"]) == 0
    assert capsysbinary.readouterr().out == os.fsencode(odd) + b"\0"


@pytest.mark.parametrize(("interrupt", "code"), [("ctrl-c", 130), ("sigterm", 143)])
def test_an_interrupted_command_says_how_to_go_on_and_exits_as_shells_expect(db, capsys, monkeypatch, interrupt, code):
    import engine.cli as cli

    def stopped(args):  # type: ignore[no-untyped-def]
        if interrupt == "sigterm":
            cli._interrupt(signal.SIGTERM, None)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_status", stopped)
    assert main(["status", *db]) == code
    assert "interrupted; run the same command again" in capsys.readouterr().err


def test_a_long_batch_sees_photos_another_process_indexes(db, rgb_folder, tiny_bundle, tmp_path, capsys, monkeypatch):
    import engine.library
    from engine.library import Library

    monkeypatch.setattr(engine.library, "RELOAD_SECONDS", 0.0)

    def queries():  # the script asks, another process indexes a photo, the script asks again
        yield "red\n"
        solid(rgb_folder / "late" / "red-again.jpg", (225, 15, 25))
        with Library(tmp_path / "lib.sqlite3", model=str(tiny_bundle), device="cpu") as other:
            other.sync()
        yield "red\n"

    monkeypatch.setattr("sys.stdin", queries())
    assert main(["search", "-", *db, "--json", "--cutoff", "-1"]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    first, second = answers[:3], answers[3:]
    assert len(first) == 3 and "red-again.jpg" in {Path(h["path"]).name for h in second}


def test_a_damaged_library_is_said_in_words_and_the_check_finds_it(db, tmp_path, tiny_bundle, capsys):
    library = tmp_path / "lib.sqlite3"
    damage(library)
    for command in (["search", "red"], ["status"], ["index"]):
        assert main([*command, *db]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert err.startswith(f"photoseek: the library file {library} is damaged (") and "not affected" in err
    # The installation check says so too (and still checks the model on its own).
    assert main(["doctor", *db, "--model", str(tiny_bundle)]) == 1
    out = capsys.readouterr().out
    assert f"library check failed: the library file {library} is damaged" in out
    assert "sessions run on: CPU" in out


def test_the_installation_check_passes_a_sound_library(db, capsys):
    assert main(["doctor", *db]) == 0
    assert "library check: ok" in capsys.readouterr().out


def test_a_like_path_the_system_refuses_is_a_query_error_and_a_batch_goes_on(db, tmp_path, capsys, monkeypatch):
    long_name = f"like:{'a' * 300}.jpg"  # longer than a file name may be
    assert main(["search", long_name, *db]) == 2
    assert capsys.readouterr().err.strip() == f"photoseek: {long_name}: File name too long"
    assert main(["search", f"like:{tmp_path}", *db]) == 2
    assert capsys.readouterr().err.strip() == f"photoseek: like:{tmp_path}: a folder, not a photo"
    monkeypatch.setattr("sys.stdin", io.StringIO(f"red\n{long_name}\nblue\n"))
    assert main(["search", "-", *db, "--json", "--limit", "1", "--cutoff", "-1"]) == 2
    captured = capsys.readouterr()
    assert [json.loads(line)["query"] for line in captured.out.splitlines()] == ["red", "blue"]
    assert captured.err.strip() == f"{long_name}: File name too long"  # the query named once


def test_a_mistyped_folder_adds_nothing_and_makes_no_library(tmp_path, tiny_bundle, rgb_folder, capsys):
    library = tmp_path / "new.sqlite3"
    options = ["--db", str(library), "--device", "cpu", "--model", str(tiny_bundle)]
    assert main(["index", str(rgb_folder), str(tmp_path / "typo"), *options]) == 2
    assert capsys.readouterr().err.strip() == f"photoseek: {tmp_path / 'typo'}: no such folder"
    assert not library.exists()
    assert main(["index", str(rgb_folder / "red.jpg"), *options]) == 2
    assert not library.exists()


def test_a_folder_is_removed_from_the_library_and_its_files_stay(db, rgb_folder, capsys):
    before = sorted(p.name for p in rgb_folder.rglob("*"))
    assert main(["remove", str(rgb_folder), *db]) == 0
    captured = capsys.readouterr()
    # (notes.jpg, a text file, is no photo)
    assert captured.out.strip() == f"removed {rgb_folder} from the library (3 photos); its files are not touched"
    assert main(["status", *db, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["photos"], info["roots"]) == (0, [])
    assert main(["search", "red", *db]) == 0
    assert capsys.readouterr().err.strip() == "the library has no folders yet"
    assert sorted(p.name for p in rgb_folder.rglob("*")) == before
    assert main(["remove", str(rgb_folder), *db]) == 2
    assert capsys.readouterr().err.strip() == f"photoseek: {rgb_folder} is not a folder of this library"
    # Added back, it is searchable again at once (what was indexed is kept for a while).
    assert main(["index", str(rgb_folder), *db]) == 0
    assert "0 indexed, 3 reused" in capsys.readouterr().err
    assert main(["search", "red", *db, "--paths-only", "--limit", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(rgb_folder / "red.jpg")


@pytest.mark.parametrize("cutoff", ["nan", "2", "-1.5", "high"])
def test_a_cutoff_that_is_no_score_is_refused(db, capsys, cutoff):
    with pytest.raises(SystemExit) as exit_:
        main(["search", "red", *db, "--cutoff", cutoff])
    assert exit_.value.code == 2 and "is not a score from -1 to 1" in capsys.readouterr().err


def test_a_folder_given_as_the_library_file_is_said_so(tmp_path, capsys):
    assert main(["index", str(tmp_path), "--db", str(tmp_path)]) == 1
    message = f"photoseek: {tmp_path} is a folder; a library is a file (for example {tmp_path / 'photoseek.sqlite3'})"
    assert capsys.readouterr().err.strip() == message


def test_status_says_where_text_and_faces_were_not_looked_for_yet(tmp_path, tiny_bundle, rgb_folder, capsys):
    options = ["--db", str(tmp_path / "lib.sqlite3"), "--device", "cpu", "--model", str(tiny_bundle)]
    assert main(["index", str(rgb_folder), *options, "--no-text"]) == 0
    assert main(["status", *options, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["text_pending"] == 3
    assert main(["status", *options]) == 0
    assert "text and faces: not looked for yet in 3 photos" in capsys.readouterr().out
    assert main(["index", *options]) == 0
    assert main(["status", *options, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["text_pending"] == 0


def test_like_a_library_photo_that_could_not_be_read_gives_its_reason(db, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # notes.jpg is found in the library folder, not here
    assert main(["search", "like:notes.jpg", *db]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("photoseek: like:notes.jpg: ") and "text file" in err


def test_the_command_starts_without_loading_the_engine():
    # Until a command needs the library, only the argument parser is loaded: `--help` answers at
    # once, and Ctrl+C in the first second meets main()'s handler, not a traceback from an import.
    heavy = "('numpy', 'sqlite_utils', 'onnxruntime')"
    code = f"import sys, engine.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_verbose_goes_before_or_after_the_command():
    from engine.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["-vv", "status"]).verbose == 2
    assert parser.parse_args(["status", "-vv"]).verbose == 2
    assert parser.parse_args(["search", "a cat", "-v"]).verbose == 1
    assert parser.parse_args(["status"]).verbose == 0


def test_captions_from_builtin_means_the_built_in_models_captioner(db, tiny_bundle, capsys, monkeypatch):
    from engine.library import Library
    from engine.models import registry

    chosen: list[str | None] = []
    monkeypatch.setattr(Library, "use_captioner", lambda self, name: chosen.append(name))
    monkeypatch.setattr(registry, "resolve", lambda name, *a, **k: tiny_bundle)  # (no build here)
    assert main(["models", "use", "builtin", "--captioner", "--later", *db]) == 0
    assert main(["models", "use", "own", "--captioner", "--later", *db]) == 0
    assert chosen == ["photoseek-builtin", None]  # not the model's own captions, as "own" is
    assert capsys.readouterr().out.splitlines() == [
        "captions now come from builtin",
        "captions now come from the model itself",
    ]


def test_a_model_name_that_names_nothing_leaves_no_library_behind(tmp_path, capsys):
    new = tmp_path / "new.sqlite3"
    assert main(["models", "use", "nothere", "--db", str(new)]) == 2  # something given it cannot use
    assert "no model named 'nothere'" in capsys.readouterr().err
    assert not new.exists()
    assert main(["models", "remove", "nothere"]) == 2
    assert main(["models", "import", str(tmp_path / "nothere")]) == 2
    # One the catalogue offers: how to get it.
    assert main(["models", "use", "clip-vit-b32", "--db", str(new)]) == 2
    assert "the model 'clip-vit-b32' is not installed: `photoseek models pull clip-vit-b32`" in capsys.readouterr().err


def test_a_model_asked_for_by_name_is_not_taken_for_the_librarys(db, capsys):
    assert main(["search", "red", *db, "--model", "nothere"]) == 2
    err = capsys.readouterr().err
    assert "no model named 'nothere'" in err and "the library uses" not in err


def test_folders_named_together_are_all_checked_before_any_is_added_or_removed(db, rgb_folder, tmp_path, capsys):
    nest = tmp_path / "nest"
    solid(nest / "inner" / "a.jpg", (10, 200, 10))
    for order in ([nest / "inner", nest], [nest, nest / "inner"]):
        assert main(["index", *map(str, order), *db]) == 2
        assert f"{nest} contains {nest / 'inner'}: name only {nest}" in capsys.readouterr().err
        assert main(["status", "--json", *db]) == 0
        assert [r["path"] for r in json.loads(capsys.readouterr().out)["roots"]] == [str(rgb_folder)]
    assert main(["remove", str(rgb_folder), str(tmp_path / "elsewhere"), *db]) == 2
    assert "elsewhere is not a folder of this library" in capsys.readouterr().err
    assert main(["status", "--json", *db]) == 0
    assert len(json.loads(capsys.readouterr().out)["roots"]) == 1  # not removed


def test_watch_without_a_library_makes_none(tmp_path, capsys):
    new = tmp_path / "new.sqlite3"
    assert main(["watch", "--db", str(new)]) == 1
    assert "no library at" in capsys.readouterr().err and not new.exists()


def test_an_empty_folder_name_is_refused_and_status_names_the_library_in_full(db, tmp_path, capsys, monkeypatch):
    assert main(["index", "", *db]) == 2  # (it was the current folder)
    assert capsys.readouterr().err.strip() == "photoseek: no folder given"
    monkeypatch.chdir(tmp_path)
    assert main(["status", "--json", "--db", "lib.sqlite3"]) == 0
    assert json.loads(capsys.readouterr().out)["library"] == str(tmp_path / "lib.sqlite3")


def test_a_link_to_a_photo_that_is_not_there_is_listed(db, rgb_folder, tmp_path, capsys):
    (rgb_folder / "holiday.jpg").symlink_to(tmp_path / "on-a-drive-not-connected.jpg")
    (rgb_folder / "notes.txt").symlink_to(tmp_path / "nowhere.txt")  # no photo's name: not said
    assert main(["index", str(rgb_folder), *db]) == 0
    assert main(["status", *db, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    reason = "cannot read the file: a link to a file that is not there"
    assert info["unreadable"] == [{"path": str(rgb_folder / "holiday.jpg"), "reason": reason}]


def test_demo_indexes_a_folder_and_prints_its_searches(tmp_path, tiny_bundle, rgb_folder, capsys):
    # (The README's first command ends here, with the sample photos and the built-in model.)
    db = tmp_path / "demo.sqlite3"
    options = ["--db", str(db), "--model", str(tiny_bundle), "--device", "cpu", "--folder", str(rgb_folder)]
    assert main(["demo", *options, "red"]) == 0
    out = capsys.readouterr().out
    assert f"Library: {db} (3 photos from {rgb_folder})" in out
    assert 'Search: "red"' in out and "red.jpg" in out
