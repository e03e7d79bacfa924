"""Whether `cli run` has anything to do, decided before Dagster is loaded (issue 30).

A run with nothing new still loaded Dagster, Great Expectations, pandas and matplotlib and walked its 42
steps, each finding its inputs unchanged: at 1 M buildings 17-39 s for no work. What a run reads is all on
disk: the uploads (data_raw/), the code, the survey's definitions (schemas/, rules/, reference/), the
database, the outputs, the district's date and the installed engines. Their fingerprint here is file names,
sizes and modification times (the code and definitions by their bytes), taken in a few milliseconds.

A successful run *confirms* the fingerprint it leaves behind: one run does all the work its inputs call for
(every step runs after the steps it reads, the validation of a 责任单位 column after the scorings that find
the enterprises, and no step's inputs are written by a later one), so a run straight after it would find
nothing to do. It confirms only when its inputs did not move while it ran: the uploads, definitions, settings
and date after it are those before it (a file landed by the web page mid-run is work for the next run), and
the fingerprint is taken before the writer lock is released (so a write waiting for the lock is not taken
for the run's own). The confirmed fingerprint is kept beside the database (STATE_NAME). A later `cli run`
that finds the same fingerprint does not start Dagster: it says so and shows the published figures. Any
change — a new or touched upload, a rule, a deleted output, a new day, a write by the portal or the
earthquake response — changes the fingerprint, and the run is a Dagster run as before (the record of every
run that did work).

The confirmed state also keeps the uploads' listing and the fingerprint of everything else. When only uploads
changed since (`changed_uploads`), every step not downstream of them is still at its fixed point: the run covers
the steps downstream of the changed uploads (as the upload sensor's runs do), and still confirms what it leaves.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from pipeline.platform import paths
from pipeline.platform.atomic import write_bytes_atomic
from pipeline.platform.clock import beijing_now, district_today

STATE_NAME = "run_state.json"  # in the database's .cache folder
DEFINITION_DIRS = ("pipeline", "schemas", "rules", "reference", "sample")  # read by their bytes
ENGINES = ("duckdb", "dagster", "great_expectations", "pandas", "matplotlib", "openpyxl")
# written by every run, also one that changes nothing: who confirmed the snapshot, locks of live runs
VOLATILE_NAMES = ("snapshot_state.json", STATE_NAME)
VOLATILE_DIRS = (".litong-runs",)


def state_path() -> Path:
    return paths.database_path().parent / ".cache" / STATE_NAME


def _listing(root: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, modification time) of every file under `root`, locks and the volatile files
    left out."""
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in VOLATILE_DIRS)
        for name in sorted(files):
            if name in VOLATILE_NAMES or name.endswith(".lock"):
                continue
            path = Path(folder, name)
            try:
                stat = path.stat()
            except OSError:  # removed while walking
                continue
            out.append((path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns))
    return out


def _file_id(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _bytes_of(root: Path) -> str:
    h = hashlib.sha256()
    for rel, _, _ in _listing(root):
        if "__pycache__" in rel:
            continue
        h.update(rel.encode())
        h.update((root / rel).read_bytes())
    return h.hexdigest()


def _engines() -> list[str]:
    versions = []
    for name in ENGINES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} -")
    return versions


@dataclass(frozen=True)
class Fingerprint:
    """`inputs`: what no run writes (uploads, definitions, settings, date, engines); `whole`: that and what a
    run writes (the database, the outputs, `.cache`); `besides_uploads`: `whole` without the uploads, and
    `uploads` their listing (name, size, time): with them a run tells which uploads alone changed."""

    inputs: str
    whole: str
    besides_uploads: str = ""
    uploads: tuple[tuple[str, int, int], ...] = ()


def taken() -> Fingerprint:
    """What a `cli run` now would read: uploads, outputs and the database (names, sizes, times), the code and
    the survey's definitions (bytes), the date, the settings and the engines' versions."""
    db = paths.database_path()
    written = {"output": paths.output_dir(), "cache": db.parent / ".cache"}
    uploads = _listing(paths.data_raw_dir()) if paths.data_raw_dir().is_dir() else None
    inputs = {
        "data_raw": uploads,
        "definitions": {d: _bytes_of(paths.PROJECT_ROOT / d) for d in DEFINITION_DIRS},
        # definitions read from elsewhere (LITONG_SCHEMAS …) by their bytes too
        "survey": [
            (str(p), _bytes_of(p) if p.is_dir() else None)
            for p in (paths.SCHEMAS_DIR, paths.RULES_DIR, paths.REFERENCE_DIR)
        ],  # fmt: skip
        "today": district_today().isoformat(),
        "settings": {k: v for k, v in sorted(os.environ.items()) if k.startswith("LITONG_")},
        "engines": _engines(),
        "db": str(db),
    }
    products = {
        "listings": {k: _listing(p) if p.is_dir() else None for k, p in written.items()},
        # its folder may hold more (DAGSTER_HOME, a person's files): not read
        "database": [(p.name, *_file_id(p)) for p in (db, db.with_name(db.name + ".wal")) if p.exists()],
    }
    inputs_hash = _hash(inputs)
    besides = _hash({"inputs": {**inputs, "data_raw": uploads is not None}, "products": products})
    return Fingerprint(inputs_hash, _hash({"inputs": inputs_hash, "products": products}), besides,
                       tuple(uploads or ()))  # fmt: skip


def _hash(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _state() -> dict | None:
    try:
        state = json.loads(state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def changed_uploads(now: Fingerprint) -> list[str] | None:
    """The uploads (paths under data_raw/) added, changed or removed since the confirmed state, when nothing
    else a run reads or writes moved since (the code, definitions, settings, date, engines, database and
    outputs are as that run left them); None otherwise (no confirmed state, or anything else moved). Every
    step was then at its fixed point, so a run of the steps downstream of those uploads does all there is to
    do (pipeline/wiring/sensors.py `what_to_run`, as the upload sensor runs them)."""
    state = _state()
    if state is None or not state.get("besides_uploads") or state["besides_uploads"] != now.besides_uploads:
        return None
    before = {rel: (size, mtime) for rel, size, mtime in state.get("uploads", [])}
    after = {rel: (size, mtime) for rel, size, mtime in now.uploads}
    return sorted(rel for rel in before.keys() | after.keys() if before.get(rel) != after.get(rel))


def confirmed(now: Fingerprint | None = None) -> dict | None:
    """The recorded state when the current fingerprint (`now`, taken here when not given) is the confirmed one:
    nothing to do."""
    state = _state()
    if state is None or state.get("fingerprint") != (now or taken()).whole:
        return None
    return state


def forget() -> None:
    state_path().unlink(missing_ok=True)


def confirm(run_id: str, before: Fingerprint, after: Fingerprint) -> bool:
    """Records that run `run_id`, which succeeded, left `after` (taken as it ended, still holding the writer
    lock) with nothing more to do — if its inputs did not move while it ran (`before`) and nothing changed
    since it ended. Else forgets any confirmed state. Returns whether it recorded."""
    if before.inputs != after.inputs or taken() != after:
        forget()
        return False
    state = {"fingerprint": after.whole, "run_id": run_id, "confirmed_at": beijing_now().isoformat(timespec="seconds"),
             "besides_uploads": after.besides_uploads, "uploads": [list(u) for u in after.uploads]}  # fmt: skip
    write_bytes_atomic(state_path(), json.dumps(state, ensure_ascii=False).encode("utf-8"))
    return True
