"""Evidence files that no submission names are deleted once they are a day old; named ones stay."""

from __future__ import annotations

import os
from datetime import timedelta

from sqlalchemy import select, update

from bot.events import Attachment
from bot.files import INCOMING_PREFIX, file_path, store_file
from bot.housekeeping import ORPHAN_FILE_AGE, prune_orphan_files
from bot.models import Submission
from tests.bot.scripted import Chat


def age(path, engine, delta: timedelta) -> None:
    """Set the file's modification time ``delta`` before the engine's clock."""
    stamp = (engine.clock() - delta).timestamp()
    os.utime(path, (stamp, stamp))


def submit_file(engine, data: bytes) -> str:
    """Send ``data`` as file evidence for the first item and return its digest."""
    ana = Chat(engine)
    ana.finish_plan()
    ana.send("/submit")
    ana.send("1")
    if ana.state() == "submit_kind":
        ana.press("submit_kind:file")
    ana.send(attachment=_pdf(data))
    ana.press("submit_confirm:send")
    with engine.session_factory() as session:
        return session.scalar(select(Submission.file_sha256).where(Submission.file_sha256.is_not(None)))


def _pdf(data: bytes) -> Attachment:
    return Attachment(filename="evidence.pdf", content_type="application/pdf", size=len(data), data=data)


def test_orphan_deleted_after_a_day(engine):
    files_dir = engine.settings.files_dir
    _, orphan = store_file(files_dir, b"%PDF-1.4 never recorded")
    age(orphan, engine, ORPHAN_FILE_AGE + timedelta(minutes=1))

    deleted = prune_orphan_files(engine.session_factory, files_dir, now=engine.clock())

    assert deleted == 1
    assert not orphan.exists()


def test_young_orphan_kept(engine):
    files_dir = engine.settings.files_dir
    _, orphan = store_file(files_dir, b"%PDF-1.4 still being recorded")
    age(orphan, engine, ORPHAN_FILE_AGE - timedelta(minutes=1))

    assert prune_orphan_files(engine.session_factory, files_dir, now=engine.clock()) == 0
    assert orphan.exists()


def test_named_file_kept(engine):
    digest = submit_file(engine, b"%PDF-1.4 real evidence")
    path = file_path(engine.settings.files_dir, digest)
    age(path, engine, timedelta(days=30))

    assert prune_orphan_files(engine.session_factory, engine.settings.files_dir, now=engine.clock()) == 0
    assert path.exists()


def test_file_unnamed_after_forget(engine):
    digest = submit_file(engine, b"%PDF-1.4 evidence of a forgotten learner")
    with engine.session_factory() as session, session.begin():
        session.execute(update(Submission).values(file_sha256=None))
    path = file_path(engine.settings.files_dir, digest)
    age(path, engine, timedelta(days=2))

    assert prune_orphan_files(engine.session_factory, engine.settings.files_dir, now=engine.clock()) == 1
    assert not path.exists()


def test_stored_again_refreshes_age(engine):
    files_dir = engine.settings.files_dir
    _, path = store_file(files_dir, b"%PDF-1.4 uploaded twice")
    age(path, engine, timedelta(days=3))

    store_file(files_dir, b"%PDF-1.4 uploaded twice")

    assert prune_orphan_files(engine.session_factory, files_dir, now=engine.clock()) == 0
    assert path.exists()


def test_unfinished_write_deleted(engine):
    files_dir = engine.settings.files_dir
    folder = files_dir / "ab"
    folder.mkdir(parents=True)
    unfinished = folder / f"{INCOMING_PREFIX}x1y2"
    unfinished.write_bytes(b"partial")
    stranger = folder / "notes.txt"
    stranger.write_bytes(b"not careerbot's")
    for path in (unfinished, stranger):
        age(path, engine, timedelta(days=2))

    assert prune_orphan_files(engine.session_factory, files_dir, now=engine.clock()) == 1
    assert not unfinished.exists()
    assert stranger.exists()


def test_many_orphans_in_batches(engine, monkeypatch):
    from bot import housekeeping

    monkeypatch.setattr(housekeeping, "ORPHAN_CHECK_BATCH", 3)
    files_dir = engine.settings.files_dir
    paths = [store_file(files_dir, f"%PDF orphan {number}".encode())[1] for number in range(7)]
    for path in paths:
        age(path, engine, timedelta(days=2))

    assert prune_orphan_files(engine.session_factory, files_dir, now=engine.clock()) == 7
    assert not any(path.exists() for path in paths)


def test_missing_files_dir(engine, tmp_path):
    assert prune_orphan_files(engine.session_factory, tmp_path / "none", now=engine.clock()) == 0
