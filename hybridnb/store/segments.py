"""The ledger's files on disk: listing, quarantine of damaged segments, torn-tail repair.

Damage stays local: a sealed segment that cannot be read is moved to
``<home>/ledger/quarantine/`` and named in one warning; every view goes on with
the rest.  A live file whose last line was cut off (a kernel killed mid-write)
has that partial line moved aside before the next append, so the next record
is never glued onto it.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path

QUARANTINE = "quarantine"

#: (path, size, mtime_ns) of segments already checked in this process
_checked: set[tuple[str, int, int]] = set()
_lock = threading.Lock()


def pending_name(session: str, segment: int) -> str:
    """The name a live file takes while it is being sealed into ``<session>-<n>.parquet``."""
    return f"{session}-{segment}.jsonl"


def list_files(d: Path) -> tuple[list[Path], list[Path]]:
    """(JSONL files to read, readable Parquet segments) in the ledger folder ``d``.

    A ``X.jsonl`` with a ``X.parquet`` next to it was already sealed: it is skipped. Anything that is
    not a plain file (a folder named like a segment) is not a segment: skipped, never read.
    """
    if not d.is_dir():
        return [], []
    sealed = sorted(p for p in d.glob("[!.]*.parquet") if p.is_file() and _segment_ok(p))
    stems = {p.stem for p in sealed}
    live = []
    for p in sorted(d.glob("[!.]*.jsonl")):
        if p.stem in stems:
            continue
        try:
            st = p.stat()
        except OSError:  # sealed away between glob and stat
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size > 0:
            live.append(p)
    return live, sealed


def _segment_ok(p: Path) -> bool:
    """Whether the Parquet segment ``p`` reads in full; a damaged one is quarantined."""
    try:
        st = p.stat()
    except OSError:
        return False
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key in _checked:
        return True
    try:
        import pyarrow.parquet as pq

        pq.read_table(p)
    except Exception as e:  # any damage: bad footer, bad page, not Parquet at all
        quarantine(p, f"{type(e).__name__}: {str(e).replace(str(p), p.name)[:160]}")
        return False
    with _lock:
        _checked.add(key)
    return True


def quarantine(p: Path, why: str) -> Path | None:
    """Move ``p`` into the quarantine folder and warn once; returns the new path."""
    dest_dir = p.parent / QUARANTINE
    try:
        dest_dir.mkdir(exist_ok=True)
        dest = dest_dir / f"{p.name}.{int(time.time())}"
        os.replace(p, dest)
    except OSError:
        return None  # another reader moved it first
    print(f"hybridnb: ledger segment {p.name} is damaged ({why}); moved to {dest} — "
          f"the other ledger files are read as usual", file=sys.stderr)
    return dest


def repair_tail(path: Path) -> int:
    """Cut a partial last line off ``path`` (kept in quarantine); returns bytes moved."""
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        back = min(size, 1 << 20)
        fh.seek(size - back)
        chunk = fh.read(back)
        cut = chunk.rfind(b"\n")
        keep = size - back + cut + 1 if cut >= 0 else (0 if back == size else size)
        torn = chunk[cut + 1:] if cut >= 0 else chunk
        qdir = path.parent / QUARANTINE
        qdir.mkdir(exist_ok=True)
        (qdir / f"{path.name}.torn.{int(time.time() * 1000)}").write_bytes(torn)
        fh.truncate(keep)
    print(f"hybridnb: the ledger file {path.name} ended in a partial line ({len(torn)} bytes, "
          f"from a process that was killed mid-write); it was moved to {qdir}", file=sys.stderr)
    return len(torn)


def snapshot(paths: list[Path], ledger_dir: Path) -> tuple[Path | None, list[Path] | None]:
    """Hard links to the JSONL ``paths`` in a private folder: a reader's view that a seal cannot pull away.

    Returns (folder, links); links is None when a file vanished meanwhile (the caller lists again), and
    folder is None when the ledger folder is not writable (the caller reads the files in place).
    """
    try:
        folder = Path(tempfile.mkdtemp(prefix=".read-", dir=ledger_dir))
    except OSError:
        return None, list(paths)
    links = []
    for i, p in enumerate(paths):
        dst = folder / f"{i}.jsonl"
        try:
            try:
                os.link(p, dst)
            except FileNotFoundError:
                raise
            except OSError:  # a file system without hard links: a copy (sealing is rare)
                shutil.copyfile(p, dst)
        except FileNotFoundError:
            shutil.rmtree(folder, ignore_errors=True)
            return folder, None
        links.append(dst)
    return folder, links
