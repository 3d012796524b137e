"""Folders kept in sync (`cite serve --watch`): files created, changed, deleted and renamed in a
watched folder reach the index within seconds, a burst is one sync, a file still being written
waits, and questions are answered throughout. In process, with the fake embedder."""

from __future__ import annotations

import threading
import time

import pytest
from cite.indexer.sync import FolderSync, SyncState, is_document

from tests.ui.helpers import CASPIAN

SYNC_S = 10  # the promise: a saved file searchable, a deleted one gone, within 10 s


def until(condition, timeout: float = SYNC_S) -> float:
    """Seconds until `condition()` held; fails after `timeout`."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "not in sync in time"
        time.sleep(0.05)
    return time.monotonic() - start


def top_doc(backend, text: str) -> str:
    return backend.engine().search(text, 1)[0].passage.doc


@pytest.fixture
def watched(backend, corpus):
    sync = backend.watch()
    assert sync is not None and sync.folders == [corpus.resolve()]
    assert sync.ready.wait(10)
    yield backend, corpus
    sync.stop()


def test_created_changed_renamed_and_deleted_files_reach_the_index(watched):
    backend, folder = watched
    owls = folder / "owls.txt"
    owls.write_text("Owls hunt mice at night with silent feathers.", encoding="utf-8")
    until(lambda: "owls.txt" in backend.document_names())
    assert top_doc(backend, "silent feathers owls") == "owls.txt"

    owls.write_text("Owls nest in hollow oak trees.", encoding="utf-8")
    until(lambda: "hollow oak" in backend.engine().snapshot().index.documents["owls.txt"].text)

    owls.rename(folder / "night-birds.txt")
    until(lambda: "night-birds.txt" in backend.document_names() and "owls.txt" not in backend.document_names())

    (folder / "night-birds.txt").unlink()
    until(lambda: "night-birds.txt" not in backend.document_names())
    assert {"bees.txt", "rivers.md"} <= set(backend.document_names())
    assert "1 removed" in backend.sync.state().last_result


def test_a_burst_of_500_files_is_indexed_while_questions_are_answered(watched):
    backend, folder = watched
    answered, failed, done = [], [], threading.Event()

    def ask() -> None:
        while not done.is_set():
            try:
                answered.append(backend.engine().ask(CASPIAN).citations[0].doc)
            except Exception as error:  # noqa: BLE001 - counted, then asserted
                failed.append(error)
            time.sleep(0.02)

    asking = threading.Thread(target=ask)
    asking.start()
    burst = folder / "burst"
    burst.mkdir()
    for n in range(500):
        (burst / f"note{n:03}.md").write_text(f"# Note {n}\n\nNote number {n} is about lake{n}.", encoding="utf-8")
    took = until(lambda: sum(name.startswith("burst/") for name in backend.document_names()) == 500, timeout=120)
    done.set()
    asking.join()
    assert not failed and len(answered) > 10 and set(answered) == {"rivers.md"}
    assert top_doc(backend, "lake417") == "burst/note417.md"
    print(f"500 files in sync after {took:.1f} s")


def test_a_file_still_being_written_is_indexed_only_once_whole(backend, corpus):
    """Writes 0.45 s apart (longer than a burst's quiet): each sync sees the whole file or none."""
    indexed: list[str] = []

    def sync(folders):
        result = backend.sync_folders(folders)
        document = backend.engine().snapshot().index.documents.get("growing.txt")
        indexed.append(document.text if document else "")
        return result

    watcher = FolderSync([corpus], sync).start()
    try:
        assert watcher.ready.wait(10)
        with (corpus / "growing.txt").open("w", encoding="utf-8") as out:
            out.write("The first half of the report says the dam is safe. ")
            for _ in range(3):
                out.flush()
                time.sleep(0.45)
                out.write("More words follow. ")
            out.write("The second half says the spillway needs repair.")
        until(lambda: any(text.endswith("spillway needs repair.") for text in indexed))
    finally:
        watcher.stop()
    assert all(text == "" or text.endswith("spillway needs repair.") for text in indexed), indexed


def test_editor_and_download_temporary_files_are_not_documents():
    assert is_document("notes.md") and is_document("a/b/Report.PDF")
    for name in (".notes.md.swp", "notes.md~", "~$report.docx", "#notes.md#", "file.pdf.part", "x.crdownload",
                 ".hidden.txt", "notes.md.tmp", "image.png"):  # fmt: skip
        assert not is_document(name), name


def test_polling_works_where_inotify_hears_nothing(backend, corpus):
    sync = FolderSync([corpus], backend.sync_folders, poll=True).start()
    try:
        assert sync.ready.wait(10)
        (corpus / "polled.txt").write_text("Polled files reach the index too.", encoding="utf-8")
        until(lambda: "polled.txt" in backend.document_names())
        assert "(polling)" in sync.state().describe()
    finally:
        sync.stop()


def test_the_state_says_what_it_watches_and_what_waits():
    state = SyncState(("/a", "/b"), False, last_sync=0.0, last_result="2 added", waiting=3)
    line = state.describe()
    assert line.startswith("Watching 2 folders · last sync ") and "(2 added)" in line
    assert line.endswith("3 files waiting")


def test_an_index_without_folders_has_nothing_to_watch(tmp_path, fake_embedder):
    from cite.ui.backend import Backend

    assert Backend(tmp_path / "none", fake_embedder).watch() is None


def test_a_folder_that_cannot_be_read_changes_nothing(backend, corpus, monkeypatch):
    from cite.indexer.loaders import Loaded, Skipped
    from cite.ui import backend as backend_module

    before = backend.document_names()
    died = Loaded([], [Skipped(corpus.name, "the reader process died")])
    monkeypatch.setattr(backend_module, "load_isolated", lambda paths: died)
    with pytest.raises(Exception, match="Could not read the folders"):
        backend.sync_folders([corpus])
    assert backend.document_names() == before
