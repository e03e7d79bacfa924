"""What a failure says to people: a full disk named in Chinese with its folder, and a ROLLBACK that never
masks the error that made it necessary.

A full disk shows as an OSError (errno ENOSPC: "No space left on device") from Python, or as DuckDB's
IOException (`Could not write file "…": No space left on device`); once DuckDB's COMMIT has failed there is
no transaction left, and the ROLLBACK after it raises "no transaction is active" — which, raised from an
`except` block, replaced the real error. `rollback` keeps the real one.
"""

from __future__ import annotations

import errno
import logging
import re
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

NO_SPACE = ("No space left on device", "database or disk is full", "Disk quota exceeded")
_QUOTED = re.compile(r"""["']([^"']+)["']""")


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK in an `except` block that re-raises: a failed ROLLBACK (no transaction left after a failed
    COMMIT, a database invalidated by an IO error) is logged, never raised over the original error."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error as e:
        log.warning("ROLLBACK failed after an error (%s): the original error follows", e)


def _chain(e: BaseException | None):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def disk_full_text(text: str) -> bool:
    return "[Errno 28]" in text or any(s in text for s in NO_SPACE)


def disk_full(e: BaseException) -> bool:
    """Whether `e` (or an error it came from) is a full disk."""
    return any((isinstance(x, OSError) and x.errno in (errno.ENOSPC, errno.EDQUOT)) or disk_full_text(str(x))
               for x in _chain(e))  # fmt: skip


def path_in(text: str) -> Path | None:
    """The file an error message names (DuckDB quotes it, Python's OSError too), if any."""
    for m in _QUOTED.finditer(text):
        if "/" in m.group(1) or "\\" in m.group(1):
            return Path(m.group(1))
    return None


def failed_path(e: BaseException) -> Path | None:
    for x in _chain(e):
        if isinstance(x, OSError) and x.filename:
            return Path(x.filename)
        if (p := path_in(str(x))) is not None:
            return p
    return None


def disk_full_zh(path: Path | None) -> str:
    """The message for people: what happened, where, what was kept, what to do."""
    where = f"“{path.parent if path.suffix else path}”所在的磁盘" if path else "数据所在的磁盘"
    return (
        f"磁盘空间不足：{where}已满，写入失败，本次运行未完成。数据库保持运行前的状态，已发布的结果未被改动。"
        "请清理该磁盘上的空间（或请管理员扩容）后重新运行"
    )


def explain_text(text: str) -> str | None:
    """The Chinese message for an error given as text (a Dagster step's recorded error), if it is a full disk."""
    return disk_full_zh(path_in(text)) if disk_full_text(text) else None


def explain(e: BaseException) -> str | None:
    """The Chinese message for an error, if it is one people can act on (a full disk); else None."""
    return disk_full_zh(failed_path(e)) if disk_full(e) else None


def error_info_zh(info) -> str | None:
    """The Chinese message for a Dagster step's recorded error (a SerializableErrorInfo: message, cause,
    context), if any error in its chain is one people can act on."""
    seen = 0
    while info is not None and seen < 20:
        if message := explain_text(info.message or ""):
            return message
        info, seen = info.cause or info.context, seen + 1
    return None


def run_failure_zh(instance, run_id: str) -> list[str]:
    """What made a run fail, in Chinese, one line per failed step: a full disk named with its folder, else the
    step that failed (the Dagster UI has the details)."""
    import dagster as dg

    lines = []
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        event = record.dagster_event
        error = event.event_specific_data.error if event.event_specific_data else None
        lines.append(error_info_zh(error) or f"步骤 {event.step_key} 失败（详见 Dagster 界面）")
    return list(dict.fromkeys(lines))
