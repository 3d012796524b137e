"""Files from strangers read, and indexed, in worker processes with a memory limit and a time
limit, so that a file made to exhaust a reader (or a huge one) costs that worker, never the
server that asked.

`load_isolated` runs `indexer.loaders.load_paths` in a child process (forkserver: never a fork
of the server itself, which runs threads and holds onnxruntime) whose address space is capped
with RLIMIT_AS before it reads anything. Whatever happens there (MemoryError, a crash in a C
library, the time limit), the caller gets a `Loaded`, with each path a Skipped saying why.

`build_isolated` runs `indexer.build.build_index` the same way: embedding a document costs
memory in proportion to its text (~70 MB a MB of text at its peak), which the server would
otherwise keep.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from cite.core.config import SplitSettings
from cite.core.embedder import Embedder
from cite.core.errors import CiteError
from cite.core.types import Document
from cite.indexer.formats.limits import DEFAULT_LIMITS, ReadLimits, size_text
from cite.indexer.loaders import Loaded, Skipped, load_paths

# The worker's address space (RLIMIT_AS: virtual memory, not resident). Measured here: a worker
# starts at ~70 MB; reading a dense 1,000-page PDF (6 million characters) peaks at 334 MB.
# Tesseract, started by the worker, inherits the limit: it took 308 MB on a 25-megapixel page.
DEFAULT_MEMORY_BYTES = 1024 * 1024 * 1024
# Time to read a file besides OCR (which `ReadLimits.ocr_seconds` bounds on its own).
PARSE_SECONDS = 600.0
# The indexing worker holds the model too (~200 MB) and embeds one text per model run (at most
# 256 tokens; core.embedder): a 5 MB text peaked at ~390 MB resident.
BUILD_MEMORY_BYTES = 3 * 1024 * 1024 * 1024
BUILD_SECONDS = 6 * 3600.0  # a 20-million-character upload embeds for hours on two cores
# Modules the forkserver imports once, so that each worker starts already holding them.
_PRELOAD = ["cite.indexer.loaders", "cite.indexer.formats.pdf", "cite.indexer.formats.office",
            "cite.indexer.formats.epub", "cite.indexer.formats.html", "pypdfium2", "docx", "pptx", "lxml.html",
            "PIL.Image"]  # fmt: skip


def load_isolated(
    paths: Iterable[Path | str],
    limits: ReadLimits = DEFAULT_LIMITS,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    timeout_s: float | None = None,
) -> Loaded:
    """`load_paths(paths, limits=limits)` in a worker process limited to `memory_bytes` of
    address space and `timeout_s` seconds (None: `limits.ocr_seconds` + PARSE_SECONDS).

    What it costs over reading in-process, measured on 2 shared cores: 0.2-0.4 s once per server
    process (the forkserver starting and importing the readers), then ~0.015 s a call: a small
    .txt 0.0001 s in-process, 0.014 s isolated; a 20-page PDF 0.19 s in-process, 0.21 s isolated.

    Returns:
        What `load_paths` returns; if the worker failed (out of memory, crashed, out of time),
        every path given is a Skipped with the reason and there are no documents.
    """
    paths = [Path(path) for path in paths]
    timeout = limits.ocr_seconds + PARSE_SECONDS if timeout_s is None else timeout_s
    kind, value, exitcode = _isolated(load_paths, (paths,), {"limits": limits}, memory_bytes, timeout)
    if kind == "done":
        return value
    reason = _failure("parsing", kind, value, exitcode, memory_bytes, timeout)
    if kind == "died":
        reason += "; the file is damaged or needs more than the memory limit"
    return Loaded([], [Skipped(path.name or str(path), reason) for path in paths])


def build_isolated(
    documents: Sequence[Document],
    root: Path,
    embedder: Embedder,
    split: SplitSettings,
    progress: Callable[[int, int], None] | None = None,
    *,
    scope: Collection[str] | None = None,
    memory_bytes: int = BUILD_MEMORY_BYTES,
    timeout_s: float = BUILD_SECONDS,
) -> Any:
    """`build_index(documents, root, embedder, split, progress, scope=scope)` in a worker process
    limited to `memory_bytes` and `timeout_s`; `progress` hears the worker's progress here.

    The worker loads `embedder` afresh (~1 s for the ONNX model). A worker killed mid-write
    leaves the index as it was (versions are switched atomically; its writer lock dies with it).

    Returns:
        build_index's IndexReport.

    Raises:
        What build_index raises (IndexBusy, DocumentError, ...), or CiteError when the worker ran
        out of memory or time, or died.
    """
    kwargs = {"scope": scope}
    kind, value, exitcode = _isolated(
        build_index_reporting, (documents, root, embedder, split), kwargs, memory_bytes, timeout_s, progress
    )
    if kind == "done":
        return value
    if kind == "raised":
        raise value
    raise CiteError(f"Indexing stopped: {_failure('indexing', kind, value, exitcode, memory_bytes, timeout_s)}.")


def build_index_reporting(*args: Any, report: Callable[[Any], None], **kwargs: Any) -> Any:
    """build_index with its progress sent to the caller as ("progress", done, total) messages."""
    from cite.indexer.build import build_index

    return build_index(*args, lambda done, total: report(("progress", done, total)), **kwargs)


def _failure(what: str, kind: str, value: str, exitcode: int | None, memory_bytes: int, timeout: float) -> str:
    """Why a worker gave no result, in words."""
    if kind == "timeout":
        return f"{what} took more than the {timeout:,g}-second time limit"
    if kind == "memory":
        return f"{what} took more than the {size_text(memory_bytes)} memory limit"
    if kind == "error":
        return f"{what} failed ({value})"
    return f"{what} failed: its process died ({_exit_name(exitcode)})"


def _isolated(
    call: Callable[..., Any],
    args: tuple,
    kwargs: dict[str, Any],
    memory_bytes: int,
    timeout: float,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[str, Any, int | None]:
    """Runs `call(*args, **kwargs)` in a worker; (kind, value, the worker's exit code), kind one of
    done, raised (a CiteError to raise here), memory, error, timeout, died. A `call` that takes
    `report` gets a function that sends messages ("progress", done, total) to `progress`."""
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    lifeline, held = context.Pipe(duplex=False)  # nothing is sent: the worker watches for `held` closing
    worker = context.Process(
        target=_work, args=(sender, lifeline, call, args, kwargs, memory_bytes), name="cite-worker", daemon=True
    )
    worker.start()
    sender.close()  # the worker holds the only sending end: its death reads as EOF here
    lifeline.close()
    outcome: tuple = ("died", "")
    deadline = time.monotonic() + timeout
    try:
        while True:
            if not receiver.poll(max(deadline - time.monotonic(), 0)):
                outcome = ("timeout", "")
                break
            message = receiver.recv()
            if message[0] != "progress":
                outcome = message
                break
            if progress is not None:
                progress(message[1], message[2])
    except (EOFError, OSError):
        pass  # it died before sending its result
    finally:
        receiver.close()
        _stop(worker, wait=outcome[0] != "timeout")
        held.close()
    return outcome[0], outcome[1], worker.exitcode


def _context() -> multiprocessing.context.BaseContext:
    """Forkserver where there is one (workers forked from a small single-threaded server
    process, fast), else spawn; never a fork of the calling process."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)  # takes effect when the forkserver starts
    return context


def _work(
    sender: Connection,
    lifeline: Connection,
    call: Callable[..., Any],
    args: tuple,
    kwargs: dict[str, Any],
    memory_bytes: int,
) -> None:
    """The worker: caps its memory, runs `call`, sends ("done", its result) or what went wrong."""
    import resource

    os.setpgrp()  # its own process group, so a timeout also stops the tesseract it started
    threading.Thread(target=_watch, args=(lifeline,), daemon=True).start()
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    if call is build_index_reporting:
        kwargs = {**kwargs, "report": sender.send}
    try:
        outcome: tuple = ("done", call(*args, **kwargs))
    except MemoryError:
        outcome = ("memory", "")
    except CiteError as error:  # the caller's to handle, as if it had called in-process
        outcome = ("raised", error)
    except Exception as error:  # noqa: BLE001 - a reader's bug must reach the caller as a reason
        outcome = ("error", f"{type(error).__name__}: {error}")
    try:
        sender.send(outcome)
    except MemoryError:  # the result itself did not fit
        sender.send(("memory", ""))
    sender.close()


def _watch(lifeline: Connection) -> None:
    """Ends the worker, and the tesseract it started, once the caller is gone: its end of
    `lifeline` closes when it gives up, or dies (a server killed mid-upload leaves no worker
    reading on for an hour). Runs on a thread of its own."""
    try:
        lifeline.recv_bytes()
    except (EOFError, OSError):
        pass
    os.killpg(0, signal.SIGKILL)


def _stop(worker: multiprocessing.process.BaseProcess, wait: bool) -> None:
    """Reaps a worker, first letting it exit on its own if `wait` (it sent its result, or died);
    kills one still running, with the processes it started (tesseract)."""
    if wait:
        worker.join(timeout=5)
    if worker.exitcode is None:
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # not yet in its own group
            worker.kill()
        worker.join()


def _exit_name(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            pass
    return f"exit code {code}"
