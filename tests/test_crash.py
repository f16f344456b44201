"""Crash safety: SIGKILL the indexer (and the watcher) at random moments, 20+ times."""

from __future__ import annotations

from engine.library import Library
from tests.crash_harness import kill_loop


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path, tiny_bundle):
    db = tmp_path / "lib.sqlite3"
    with Library(db, model=str(tiny_bundle), device="cpu") as library:
        model_id = library.model.id
    report = kill_loop(db, tiny_bundle, tmp_path / "photos", model_id, kills=20, seed=1)
    assert report.kills >= 20 and report.checks >= 20
    # Many kills landed while photos were being indexed, on a slow machine as on a fast one.
    assert report.aimed >= 5 and report.cut_short >= 5, report
    final = report.final
    assert final["photos"] > 100
    assert final["lost"] == 0 and final["duplicates"] == 0 and final["ghosts"] == 0
    assert final["not_indexed"] == 0 and final["missing_vectors"] == 0
    assert final["orphan_contents"] == 0 and final["orphan_vectors"] == 0
