"""What the portal's pages show, read from the snapshot the last run published (read-only, never the live
database: a page never waits behind a run and never holds the writer lock).

One read-only DuckDB connection per published snapshot file is kept and each request reads through its
own cursor; a new publication (a new file renamed into place) is opened on the next request, and the old
connection goes when no request uses it any more.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline.formats.excel_safe import sql_text
from pipeline.intake.receipts import receipt_path
from pipeline.ledger import duban
from pipeline.ledger.exports import SUMMARY_KEYS, SUMMARY_SQL, ledger_sql, register_reference
from pipeline.ledger.model import OPEN_STATUSES
from pipeline.ledger.supervision import hazard_supervisor
from pipeline.platform import writer_lock
from pipeline.platform.clock import district_today
from pipeline.platform.store import has_table
from pipeline.portal.accounts import Account
from pipeline.registries import units as registry
from pipeline.registries.events import closed_at, declared_events
from pipeline.registries.risk_levels import risk_levels
from pipeline.registries.templates import KINDS, load_template

PAGE_ROWS = 200
REFERENCE_LISTS = ("ref_towns_list", "ref_units_list", "ref_kinds_list")
LEDGER_TABLE_COLUMNS = (
    "hazard_no, kind, kind_zh, asset_name, town_code, town_name, responsible_unit, unit_name, hazard_grade, "
    "risk_level, risk_level_zh, status, rectification, rectification_zh, deadline, extend_to, next_review, "
    "overdue_days, extend_status, found_date, accept_date, sector_supervisor, overdue_kind, control_deadline, "
    "control_done_on, asset_id, supervise_status"
)
SNAPSHOT = "published"
STATUSES = (*OPEN_STATUSES, "已销号")
GRADES = ("重大", "一般")


class Snapshots:
    """The published snapshot, opened read-only once per publication, with what its pages share built once: the
    reference lists, and per district date the ledger's list columns with overdue days (`ledger_table`), so a
    page filters a table instead of recomputing the ledger; small results (`cached`) are kept per publication."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._cache: dict = {}
        self._key_locks: dict[tuple, threading.RLock] = {}

    def _current(self) -> duckdb.DuckDBPyConnection | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        key = (st.st_ino, st.st_mtime_ns)
        with self._lock:
            if key != self._key:
                self._con, self._key, self._cache, self._key_locks = _open(self.path), key, {}, {}
            return self._con

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A cursor on the latest publication; None before the first run published anything."""
        con = self._current()
        if con is None:
            yield None
            return
        cur = con.cursor()
        cur.execute(f"USE {SNAPSHOT}")
        cur.execute(f"SET search_path = '{SNAPSHOT}.main,memory.main'")  # the shared lists live in memory.main
        try:
            yield cur
        finally:
            cur.close()

    def cached(self, key: tuple, compute):
        """`compute()` once per publication and key (a new publication starts afresh).

        One lock per key, never one for all: a computation may itself need another key (the leaders' figures
        need the ledger table), and a slow key never holds up the others. The lock is reentrant, so a thread
        that comes back to a key it is computing computes it again rather than waiting for itself."""
        self._current()
        with self._lock:
            cache, locks = self._cache, self._key_locks
            if key in cache:
                return cache[key]
            key_lock = locks.setdefault(key, threading.RLock())
        with key_lock:  # one computation per key, whoever asks first; the others wait for its result
            if key not in cache:
                cache[key] = compute()
            return cache[key]

    def ledger_table(self, as_of: dt.date) -> str:
        """The ledger's list columns as of `as_of`, in memory, built once per publication and date."""
        name = f"memory.main.portal_ledger_{as_of:%Y%m%d}"

        def build() -> str:
            with self.cursor() as cur:
                if has_table(cur, "hazards"):
                    cur.execute(f"CREATE TABLE IF NOT EXISTS {name} AS WITH l AS ({ledger_sql()}) "
                                f"SELECT {LEDGER_TABLE_COLUMNS} FROM l", {"as_of": as_of})  # fmt: skip
                else:
                    cur.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT NULL::VARCHAR AS hazard_no WHERE false")
            return name

        return self.cached(("ledger", as_of), build)

    def published_at(self) -> dt.datetime | None:
        def read():
            with self.cursor() as cur:
                if cur is None or not has_table(cur, "snapshot_info"):
                    return None
                rows = cur.execute("SELECT published_at FROM snapshot_info").fetchall()
                return rows[0][0] if rows else None

        return self.cached(("published_at",), read) if self._current() is not None else None


def _open(path: Path) -> duckdb.DuckDBPyConnection:
    """The file attached read-only to an in-memory database. Not `duckdb.connect(path)`: DuckDB keeps one
    instance per path in a process, so after a new publication is renamed into place that would hand back
    the old file's instance (stale figures) while any cursor on it is still alive."""
    con = duckdb.connect(":memory:")
    con.execute("SET memory_limit = '1GB'")
    con.execute(f"ATTACH {sql_text(str(path))} AS {SNAPSHOT} (READ_ONLY)")
    con.execute(f"USE {SNAPSHOT}")
    registry.load_enterprises(con)
    register_reference(con)  # the names the ledger SQL joins, as tables every cursor sees
    for name in REFERENCE_LISTS:
        con.execute(f"CREATE TABLE memory.main.{name} AS SELECT * FROM {name}")
        con.unregister(name)
    return con


# --- who sees what ---------------------------------------------------------------------


def visible_units(account: Account, cur: duckdb.DuckDBPyConnection | None = None, ledger: str = "") -> list[str] | None:
    """The responsible units whose hazards the account sees (None: every unit: the reading roles, and the
    government, which issues 挂牌督办). A supervising department sees, besides its own, the units of the
    hazards it supervises by sector (read from `ledger` when given)."""
    if account.reads_all or may_see_duban(account):
        return None
    if account.role == "supervisor" and cur is not None and ledger:
        rows = cur.execute(f"SELECT DISTINCT responsible_unit FROM {ledger} WHERE sector_supervisor = $own "
                           "AND responsible_unit <> $own ORDER BY 1", {"own": account.unit_code}).fetchall()  # fmt: skip
        return [account.unit_code, *(r[0] for r in rows)]
    return [account.unit_code]


def may_see(account: Account, h: dict) -> bool:
    """One hazard: the account's unit answers for it, or supervises it (by sector), or the account reads all."""
    return (account.reads_all or may_see_duban(account) or h["responsible_unit"] == account.unit_code
            or may_decide(account, h))  # fmt: skip


def may_see_duban(account: Account) -> bool:
    """The 督办建议清单 is for the government (reference/duban.yaml's issuers) and the accounts that read all."""
    return account.role != "admin" and (account.reads_all or account.unit_code in duban.issuers())


def duban_actions(account: Account, h: dict) -> list[str]:
    """The 督办 decisions the account may send on hazard `h` from its page: 挂牌督办 (the government, on an open 重大
    hazard not under 督办) and 督办核销 (the unit that issued the notice, once the hazard is 已销号). The ledger
    checks them again when it applies the row."""
    if not account.can_upload or account.unit_code not in duban.issuers():
        return []
    if h["supervise_status"] == "待核销" and h["supervise_unit"] == account.unit_code:
        return ["督办核销"]
    if h["hazard_grade"] == "重大" and h["status"] in OPEN_STATUSES and h["supervise_status"] != "督办中":
        return ["挂牌督办"]
    return []


def may_decide(account: Account, h: dict) -> bool:
    """Acceptance and extension decisions belong to the hazard's supervising department (by sector,
    pipeline/ledger/supervision.py), never to the unit that answers for it."""
    return account.role == "supervisor" and hazard_supervisor(h) == account.unit_code


# --- hazards ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HazardFilter:
    status: str = ""
    grade: str = ""
    kind: str = ""
    overdue_only: bool = False
    unit: str = ""  # one of the visible units
    page: int = 1
    # issue 27 §2: the to-do counts' filters and the search
    as_of: dt.date | None = None  # the district's date (临期 counts from it)
    due_within: int = 0  # 临期: due within so many days (0: no such filter)
    extension_pending: bool = False  # 延期待审批
    supervised: bool = False  # 督办中
    to_accept: bool = False  # 待验收 (a supervisor: those it must accept)
    town: str = ""
    text: str = ""  # object name, description or address contains
    due_from: dt.date | None = None  # deadline (or approved extension) range
    due_to: dt.date | None = None


HAZARD_LIST_COLUMNS = (
    "hazard_no, kind_zh, asset_name, town_name, responsible_unit, unit_name, hazard_grade, risk_level_zh, "
    "status, rectification_zh, deadline, extend_to, next_review, overdue_days, extend_status, overdue_kind, "
    "control_deadline, control_done_on"
)


def _where(account: Account, f: HazardFilter) -> tuple[str, dict]:
    """The account's hazards (its unit's own; a supervising department's also those it supervises; all for
    the reading roles and the government) under the filter."""
    if account.reads_all or may_see_duban(account):
        where, params = ["true"], {}
    elif account.role == "supervisor":
        where, params = ["(responsible_unit = $own OR sector_supervisor = $own)"], {"own": account.unit_code}
    else:
        where, params = ["responsible_unit = $own"], {"own": account.unit_code}
    for column, value in (("status", f.status), ("hazard_grade", f.grade), ("kind", f.kind),
                          ("responsible_unit", f.unit)):  # fmt: skip
        if value:
            where.append(f"{column} = ${column}")
            params[column] = value
    if f.overdue_only:
        where.append(TODO_SQL["overdue"])
    if f.due_within and f.as_of:
        where.append(due_within_sql(f.due_within))
        params["as_of"] = f.as_of
    if f.extension_pending:
        where.append(TODO_SQL["extension"])
    if f.supervised:
        where.append(TODO_SQL["supervised"])
    if f.to_accept:
        where.append(to_accept_sql(account))
        if account.role == "supervisor":
            params["own"] = account.unit_code
    if f.town:
        where.append("town_code = $town")
        params["town"] = f.town
    if f.text:
        where.append("(contains(asset_name, $text) OR contains(hazard_no, $text) OR asset_id IN "
                     "(SELECT building_id FROM stg_buildings WHERE contains(address, $text)))")  # fmt: skip
        params["text"] = f.text
    if f.due_from:
        where.append("coalesce(extend_to, deadline) >= $due_from")
        params["due_from"] = f.due_from
    if f.due_to:
        where.append("coalesce(extend_to, deadline) <= $due_to")
        params["due_to"] = f.due_to
    return " AND ".join(where), params


# --- the home page's to-do counts (issue 27 §2) --------------------------------------------------

DUE_DAYS = (7, 15, 30)
TODO_SQL = {
    "overdue": "overdue_days IS NOT NULL",
    "extension": "extend_status = '待审批' AND status <> '已销号'",
    "supervised": "supervise_status = '督办中'",
}


def due_within_sql(days: int) -> str:
    """临期: an open hazard not overdue yet whose deadline (or approved extension), or whose control deadline
    with the measure not yet in place, falls within `days` days of $as_of."""
    return (f"(overdue_days IS NULL AND status IN ('待整改', '整改中') AND "
            f"(coalesce(extend_to, deadline) BETWEEN $as_of AND $as_of + {int(days)} "
            f"OR (control_done_on IS NULL AND control_deadline BETWEEN $as_of AND $as_of + {int(days)})))")  # fmt: skip


def to_accept_sql(account: Account) -> str:
    """待验收: 已整改待验收; for a supervising department, those it must accept (its sector's)."""
    if account.role == "supervisor":
        return "(status = '已整改待验收' AND sector_supervisor = $own)"
    return "status = '已整改待验收'"


def todo_counts(cur: duckdb.DuckDBPyConnection, ledger: str, account: Account, as_of: dt.date) -> dict[str, int]:
    """What the account has to do today, counted over the hazards it sees: 逾期, 临期 within 7/15/30 days,
    待验收, 延期待审批, 督办中."""
    where, params = _where(account, HazardFilter())
    parts = {"overdue": TODO_SQL["overdue"], **{f"due_{d}": due_within_sql(d) for d in DUE_DAYS},
             "to_accept": to_accept_sql(account), "extension": TODO_SQL["extension"],
             "supervised": TODO_SQL["supervised"]}  # fmt: skip
    sql = ", ".join(f"count(*) FILTER (WHERE {cond})" for cond in parts.values())
    params = params | {"as_of": as_of} | ({"own": account.unit_code} if "$own" in sql + where else {})
    row = cur.execute(f"SELECT {sql} FROM {ledger} WHERE {where}", params).fetchall()[0]
    return dict(zip(parts, row, strict=True))


def hazards(cur: duckdb.DuckDBPyConnection, ledger: str, account: Account, f: HazardFilter) -> tuple[list[dict], int]:
    """One page of the hazards the account sees (from `ledger`, Snapshots.ledger_table), and the total."""
    where, params = _where(account, f)
    total = cur.execute(f"SELECT count(*) FROM {ledger} WHERE {where}", params).fetchall()[0][0]
    c = cur.execute(
        f"SELECT {HAZARD_LIST_COLUMNS} FROM {ledger} WHERE {where} "
        "ORDER BY overdue_days DESC NULLS LAST, hazard_grade = '一般', hazard_no LIMIT $limit OFFSET $offset",
        params | {"limit": PAGE_ROWS, "offset": (max(f.page, 1) - 1) * PAGE_ROWS},
    )
    names = [d[0] for d in c.description]
    return [dict(zip(names, r, strict=True)) for r in c.fetchall()], total


def export_rows(cur: duckdb.DuckDBPyConnection, ledger: str, account: Account, f: HazardFilter,
                columns: list[str]) -> list[tuple]:  # fmt: skip
    """Every hazard of the filtered list (all pages), with `columns` of the full ledger, in the list's order."""
    where, params = _where(account, f)
    c = cur.execute(
        f"WITH l AS ({ledger_sql()}), chosen AS (SELECT hazard_no, overdue_days AS o, hazard_grade AS g "
        f"FROM {ledger} WHERE {where}) SELECT {', '.join('l.' + c for c in columns)} FROM l JOIN chosen "
        "USING (hazard_no) ORDER BY chosen.o DESC NULLS LAST, chosen.g = '一般', hazard_no",
        params | {"as_of": f.as_of or district_today()},
    )
    return c.fetchall()


def hazard(cur: duckdb.DuckDBPyConnection, hazard_no: str, as_of: dt.date) -> dict | None:
    """One hazard with every column of the ledger (display names, overdue days as of `as_of`)."""
    if not has_table(cur, "hazards"):
        return None
    c = cur.execute(
        f"WITH l AS ({ledger_sql('(SELECT * FROM hazards WHERE hazard_no = $no)')}) SELECT * FROM l",
        {"as_of": as_of, "no": hazard_no},
    )
    names = [d[0] for d in c.description]
    rows = c.fetchall()
    return dict(zip(names, rows[0], strict=True)) if rows else None


def history(cur: duckdb.DuckDBPyConnection, hazard_no: str) -> list[dict]:
    c = cur.execute(
        "SELECT event_date, recorded_at, from_status, to_status, unit, source_file, note FROM hazard_events "
        "WHERE hazard_no = ? ORDER BY seq",
        [hazard_no],
    )
    names = [d[0] for d in c.description]
    return [dict(zip(names, r, strict=True)) for r in c.fetchall()]


def feedback_rows(cur: duckdb.DuckDBPyConnection, ledger: str, account: Account, f: HazardFilter) -> list[dict]:
    """The feedback template's rows the account can act on, under the filter, with the numbers pre-filled: its own
    unit's open hazards, and for a supervisor also its units' hazards awaiting acceptance or an extension decision."""
    where, params = _where(account, f)
    rows = cur.execute(
        f"SELECT hazard_no, asset_name, coalesce(extend_to, deadline), overdue_days FROM {ledger} WHERE {where} "
        "AND status <> '已销号' AND (responsible_unit = $own OR status = '已整改待验收' OR extend_status = '待审批') "
        "ORDER BY hazard_no",
        params | {"own": account.unit_code},
    ).fetchall()
    return [{"hazard_no": no, "asset_name": name or "", "deadline_info": deadline, "overdue_info": overdue}
            for no, name, deadline, overdue in rows]  # fmt: skip


# the pre-filled feedback file's columns for reading only, beside the hazard number (the intake ignores them)
FEEDBACK_INFO = (("对象名称（仅供参考）", "asset_name"), ("整改时限（仅供参考）", "deadline_info"),
                 ("逾期天数（仅供参考）", "overdue_info"))  # fmt: skip


# --- the leaders' page -----------------------------------------------------------------


def summaries(cur: duckdb.DuckDBPyConnection, ledger: str, as_of: dt.date, by: str) -> list[dict]:
    """Per town or per responsible unit: found, open, closed, rate, overdue … (the ledger's summary sheet)."""
    key, key_zh, name = SUMMARY_KEYS[by]
    sql = SUMMARY_SQL.format(ledger=f"SELECT * FROM {ledger}", key=key, key_zh=key_zh, name=name)
    c = cur.execute(sql, {"period_start": as_of.replace(day=1)})
    names = [d[0] for d in c.description]
    return [dict(zip(names, r, strict=True)) for r in c.fetchall()]


def headline(cur: duckdb.DuckDBPyConnection, ledger: str, town: str = "", unit: str = "") -> dict:
    """The briefing's six figures, for the district or one town or one unit."""
    out = {"found": 0, "closed": 0, "overdue": 0, "under_control": 0, "open_major": 0, "red_assets": 0}
    params = {"town": town or None, "unit": unit or None}
    row = cur.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE status = '已销号'), count(overdue_days),
               count(*) FILTER (WHERE status = '管控中'),
               count(*) FILTER (WHERE status <> '已销号' AND hazard_grade = '重大')
        FROM {ledger} WHERE ($town IS NULL OR town_code = $town) AND ($unit IS NULL OR responsible_unit = $unit)""",
        params,
    ).fetchall()[0]
    out.update(zip(("found", "closed", "overdue", "under_control", "open_major"), row, strict=True))
    if has_table(cur, "scores") and not unit:
        out["red_assets"] = cur.execute(
            "SELECT count(*) FROM scores WHERE level = 'red' AND ($town IS NULL OR town_code = $town)",
            {"town": town or None},
        ).fetchall()[0][0]
    out["rate"] = out["closed"] / out["found"] if out["found"] else 0.0
    return out


def shelter_capacity(cur: duckdb.DuckDBPyConnection, town: str = "") -> list[dict]:
    """Per town (or the one town): usable shelter capacity against the people to shelter (v_shelter_capacity in
    the publication; none before any shelter is surveyed), the towns short of it first, with the population's source."""
    if not cur.execute(
        "SELECT 1 FROM duckdb_views() WHERE view_name = 'v_shelter_capacity' AND NOT internal"
    ).fetchall():
        return []
    c = cur.execute(
        """SELECT c.town_code AS 乡镇代码, c.town_name AS 乡镇, c.population AS 常住人口, c.people_to_shelter AS 需避难人数,
                  c.usable_capacity AS 可用避难容量, greatest(c.capacity_gap, 0) AS 容量缺口, c.capacity_ratio AS 满足率,
                  c.usable_shelters AS 可用场所数, c.shelters AS 场所数, p.source AS 人口来源
           FROM v_shelter_capacity c LEFT JOIN ref_town_population p ON p.town_code::VARCHAR = c.town_code
           WHERE $town IS NULL OR c.town_code = $town
           ORDER BY c.capacity_gap > 0 DESC, c.capacity_ratio, c.town_code""",
        {"town": town or None},
    )
    names = [d[0] for d in c.description]
    return [dict(zip(names, r, strict=True)) for r in c.fetchall()]


# --- the leaders' figures for a town or a unit (issue 27 §3) ------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One bar chart drawn in the page (server-rendered SVG): its key, title, bars (label, value, colour class)."""

    key: str
    title: str
    bars: list[tuple[str, int, str]]

    @property
    def top(self) -> int:
        return max([v for _, v, _ in self.bars] + [1])


def _month_bounds(as_of: dt.date) -> tuple[dt.date, dt.date, dt.date]:
    """The first days of last month, this month and next month (this month holds `as_of`)."""
    this = as_of.replace(day=1)
    last = (this - dt.timedelta(days=1)).replace(day=1)
    return last, this, (this + dt.timedelta(days=32)).replace(day=1)


def leader_figures(cur: duckdb.DuckDBPyConnection, ledger: str, as_of: dt.date, town: str = "",
                   unit: str = "") -> list[Figure]:  # fmt: skip
    """The leaders' charts for the district, one town or one unit, from the publication (the charts' inputs,
    pipeline/publish/inputs.py: score_counts, ledger_counts, filtered): risk levels of the objects, the
    hazards by status, open hazards by responsible unit, and this month against last (found, closed)."""
    params = {"town": town or None, "unit": unit or None}
    where = "($town IS NULL OR town_code = $town) AND ($unit IS NULL OR responsible_unit = $unit)"
    out = []
    if has_table(cur, "scores") and not unit:
        levels = dict(cur.execute("SELECT level, count(*) AS n FROM scores WHERE ($town IS NULL OR town_code = $town) "
                                  "GROUP BY level", {"town": town or None}).fetchall())  # fmt: skip
        out.append(
            Figure(
                "levels",
                "资产风险等级（对象数）",
                [(lv.short_label_zh, int(levels.get(lv.key, 0)), lv.key) for lv in risk_levels()],
            )
        )
    status = dict(cur.execute(f"SELECT status, count(*) AS n FROM {ledger} WHERE {where} GROUP BY status",
                              params).fetchall())  # fmt: skip
    out.append(Figure("progress", "隐患整改进度（按状态）",
                      [(s, int(status.get(s, 0)), "closed" if s == "已销号" else "open") for s in STATUSES]))  # fmt: skip
    units = cur.execute(
        f"SELECT coalesce(unit_name, responsible_unit, '未明确') AS unit_name, count(*) AS n FROM {ledger} "
        f"WHERE {where} AND status <> '已销号' GROUP BY ALL ORDER BY n DESC, unit_name LIMIT 8",
        params,
    ).fetchall()
    out.append(Figure("units", "未销号隐患最多的责任单位", [(n, int(c), "open") for n, c in units]))
    last, this, after = _month_bounds(as_of)
    found_last, found_this, closed_last, closed_this = cur.execute(
        f"""SELECT count(*) FILTER (WHERE found_date >= $last AND found_date < $this),
                   count(*) FILTER (WHERE found_date >= $this AND found_date < $after),
                   count(*) FILTER (WHERE status = '已销号' AND accept_date >= $last AND accept_date < $this),
                   count(*) FILTER (WHERE status = '已销号' AND accept_date >= $this AND accept_date < $after)
            FROM {ledger} WHERE {where}""",
        params | {"last": last, "this": this, "after": after},
    ).fetchall()[0]
    out.append(Figure("months", f"本月（{this.month}月）与上月（{last.month}月）",
                      [("上月新发现", found_last, "open"), ("本月新发现", found_this, "open"),
                       ("上月销号", closed_last, "closed"), ("本月销号", closed_this, "closed")]))  # fmt: skip
    return out


def last_month_by_town(cur: duckdb.DuckDBPyConnection, ledger: str, as_of: dt.date) -> dict[str, tuple[int, int]]:
    """Per town: hazards found and closed last month (the towns table sets this month's beside them)."""
    last, this, _ = _month_bounds(as_of)
    rows = cur.execute(
        f"""SELECT town_code, count(*) FILTER (WHERE found_date >= $last AND found_date < $this),
                   count(*) FILTER (WHERE status = '已销号' AND accept_date >= $last AND accept_date < $this)
            FROM {ledger} GROUP BY 1""",
        {"last": last, "this": this},
    ).fetchall()
    return {t: (int(f), int(c)) for t, f, c in rows}


def worst_first(rows: list[dict]) -> list[dict]:
    """Towns (or units) worst first: most open 重大 hazards, then most overdue, then most open."""
    return sorted(rows, key=lambda r: (-(r["未销号重大隐患"] or 0), -(r["逾期数"] or 0), -(r["未销号"] or 0)))


# --- 挂牌督办: proposals and notices (issue 26 §3) ---------------------------------------------------------


def duban_proposals(cur: duckdb.DuckDBPyConnection, as_of: dt.date) -> list[dict]:
    """The 督办建议清单 as of `as_of` (reference/duban.yaml's rules over the published ledger)."""
    if not has_table(cur, "hazards"):
        return []
    c = cur.execute(
        f"SELECT {', '.join(duban.PROPOSAL_COLUMNS)} FROM ({duban.proposals_sql(ledger_sql())})", {"as_of": as_of}
    )
    names = [d[0] for d in c.description]
    return [dict(zip(names, r, strict=True)) for r in c.fetchall()]


def duban_notices(cur: duckdb.DuckDBPyConnection, as_of: dt.date) -> list[dict]:
    """The 督办 notices issued (a hazard each), those still running first: number, unit, dates, requirement, state."""
    if not has_table(cur, "hazards"):
        return []
    c = cur.execute(
        f"SELECT hazard_no, asset_name, unit_name, hazard_grade, status, supervise_no, supervise_unit, supervise_date, "
        f"supervise_deadline, supervise_requirement, supervise_status, supervise_closed_on FROM ({ledger_sql()}) "
        "WHERE supervise_no IS NOT NULL ORDER BY supervise_status = '已核销', supervise_date, hazard_no",
        {"as_of": as_of},
    )
    names = [d[0] for d in c.description]
    return [dict(zip(names, r, strict=True)) for r in c.fetchall()]


# --- uploads: what the run made of them -------------------------------------------------


@dataclass
class FileOutcome:
    kind: str
    title: str
    status: str  # ingested / unreadable
    problem: str | None
    rows: int
    accepted: int
    refused: int
    receipt: Path
    detail: str = ""  # feedback: rows applied / returned


def outcome(
    cur: duckdb.DuckDBPyConnection, receipts_dir: Path, rel_path: str, sha256: str, unit: str
) -> list[FileOutcome]:
    """Each kind of records the run registered for these bytes at this path (none yet: not processed)."""
    rows = cur.execute(
        "SELECT file_id, kind, status, problem_zh, rows_read FROM intake_files WHERE rel_path = ? AND sha256 = ? "
        "ORDER BY kind",
        [rel_path, sha256],
    ).fetchall()
    out = []
    folder_kind = rel_path.split("/", 1)[0]
    for file_id, kind, status, problem, rows_read in rows:
        accepted = cur.execute(f"SELECT count(*) FROM stg_{kind} WHERE file_id = ?", [file_id]).fetchall()[0][0]
        refused = cur.execute("SELECT count(*) FROM quarantine WHERE file_id = ?", [file_id]).fetchall()[0][0]
        receipt = receipt_path(receipts_dir, rel_path, unit, kind if folder_kind in KINDS else None)
        o = FileOutcome(kind, load_template(kind).title, status, problem, rows_read or 0, accepted, refused, receipt)
        if kind == "feedback" and has_table(cur, "feedback_applied"):
            done = cur.execute("SELECT applied, refused FROM feedback_applied WHERE file_id = ?", [file_id]).fetchall()
            o.detail = f"已执行 {done[0][0]} 行，退回 {done[0][1]} 行" if done else "尚未执行"
        out.append(o)
    return out


def writer_running(database: Path) -> str | None:
    """Who is writing the database now (the run that will take the upload), or None."""
    path = writer_lock.lock_path(database)
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return None
    pid = info.get("pid")
    try:
        if not pid or int(pid) == os.getpid():
            return None
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return None
    return writer_lock.holder(database)


# --- earthquakes -------------------------------------------------------------------------


def open_events(data_raw: Path) -> list[str]:
    """Declared events not closed yet, newest first (灾情反馈 goes to one of them)."""
    events = declared_events(data_raw)
    return sorted((e for e in events if closed_at(data_raw, e) is None), key=lambda e: events[e], reverse=True)


def quake_reports(quake_dir: Path) -> list[tuple[str, list[str]]]:
    """(event id, report files) of every event folder, newest first."""
    if not quake_dir.is_dir():
        return []
    out = []
    for d in sorted((p for p in quake_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "未受理"))),
                    reverse=True):  # fmt: skip
        files = sorted(p.name for p in d.iterdir() if p.is_file() and p.suffix in (".txt", ".pdf", ".png", ".xlsx"))
        out.append((d.name, files))
    return out


# --- issue 27 §1: the responsible unit's report from the hazard page, evidence, batch acceptance, rejections ----

# step -> (the button's words, the 整改状态 the feedback row carries; None: the hazard's own status)
REPORT_STEPS = {
    "start": ("开始整改", "整改中"),
    "done": ("整改完成（报请验收）", "已整改待验收"),
    "extend": ("申请延期", None),
    "control_done": ("管控措施已落实", "管控措施已落实"),
    "control": ("转为管控", "管控中"),
}


def report_steps(account: Account, h: dict) -> list[str]:
    """The steps the account's unit may report on hazard `h` from its page (the next ones its status allows, by
    reference/ledger_transitions.csv): only the responsible unit's uploading accounts. The ledger checks again."""
    from pipeline.ledger.model import unit_actor

    if not account.can_upload or h["responsible_unit"] != account.unit_code or h["status"] not in OPEN_STATUSES:
        return []
    status, steps = h["status"], []
    if status != "整改中" and unit_actor(status, "整改中") == "responsible":
        steps.append("start")
    if unit_actor(status, "已整改待验收") == "responsible":
        steps.append("done")
    if unit_actor(status, status) == "responsible" and h.get("extend_status") != "待审批":
        steps.append("extend")
    if h.get("control_deadline") and not h.get("control_done_on") and unit_actor(status, status) == "responsible":
        steps.append("control_done")
    if status != "管控中" and unit_actor(status, "管控中") == "responsible":
        steps.append("control")
    return steps


PHOTO_NOTE = re.compile(r"(整改前|整改后)照片：((?:[0-9a-f]{64})(?:、[0-9a-f]{64})*)")


def photos(events: list[dict]) -> list[dict]:
    """The photos reported with the hazard's events (整改前/整改后, by SHA-256, in the event's note), in order."""
    out, seen = [], set()
    for e in events:
        for label, hashes in PHOTO_NOTE.findall(e.get("note") or ""):
            for sha in hashes.split("、"):
                if sha not in seen:
                    seen.add(sha)
                    out.append({"sha": sha, "label": label, "event_date": e["event_date"], "unit": e["unit"]})
    return out


def decidable(cur: duckdb.DuckDBPyConnection, ledger: str, account: Account, numbers: list[str]) -> set[str]:
    """Of `numbers`, the hazards awaiting acceptance that the account's department decides (batch acceptance)."""
    if account.role != "supervisor" or not numbers:
        return set()
    rows = cur.execute(
        f"SELECT hazard_no, responsible_unit, sector_supervisor FROM {ledger} WHERE status = '已整改待验收' "
        "AND hazard_no IN (SELECT unnest($nos::VARCHAR[]))",
        {"nos": numbers},
    ).fetchall()
    return {no for no, unit, sup in rows if may_decide(account, {"responsible_unit": unit, "sector_supervisor": sup})}


def rejections(cur: duckdb.DuckDBPyConnection, account: Account, limit: int = 50) -> list[dict]:
    """The unit's hazards whose last event is a rejection (验收不通过: 已整改待验收 → 整改中 by another unit, the
    supervising department), newest first, with the reason (the event's note)."""
    if not account.can_upload or not has_table(cur, "hazard_events"):
        return []
    c = cur.execute(
        """
        WITH last AS (SELECT e.*, row_number() OVER (PARTITION BY e.hazard_no ORDER BY e.seq DESC) AS k
                      FROM hazard_events e JOIN hazards h USING (hazard_no) WHERE h.responsible_unit = $own)
        SELECT l.hazard_no, l.event_date, l.unit, l.note, h.asset_name, h.status FROM last l
        JOIN hazards h USING (hazard_no)
        WHERE l.k = 1 AND l.from_status = '已整改待验收' AND l.to_status = '整改中' AND l.unit <> $own
          AND h.status = '整改中'
        ORDER BY l.event_date DESC, l.hazard_no LIMIT $limit
        """,
        {"own": account.unit_code, "limit": limit},
    )
    names = [d[0] for d in c.description]
    return [dict(zip(names, r, strict=True)) for r in c.fetchall()]
