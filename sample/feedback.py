"""The bundled sample's rectification programme: what units send back from 2023 to the sample's as-of date.

    python -m sample.feedback --db output/sample_build/litong.duckdb --out data_raw

Reads the ledger of a run of the sample survey (the 2023 survey and the transport bureau's 2024 resurvey of a
third of the bridges, round 2024-2) and writes, in the feedback template's Chinese headers,
under data_raw/feedback/<unit>/<batch>/, the story of a district in the middle of the work (the shares
are the targets stated in the README; the seeded draws land near them):

* 2023-10  every responsible unit (towns, departments, the enterprises that answer) starts work on most
           of its hazards (整改中; 管控中 where a hazard can only be controlled, with monitoring), 重大 ones
           with the 五落实 (person, measures, funds, finish date, emergency plan); some ask for an extension;
* 2023-11  the supervisors decide the extension requests (most approved);
* 2024-05  part of the work is reported done (已整改待验收), late starters begin (asking for time where the
           deadline has passed), controls are reviewed;
* 2024-06  the supervisors accept most of it (已销号; 重大 ones on an assessment report), send a few back,
           and decide the new extension requests;
* 2025-04  more work done, more late starts, controls reviewed again (a few reviews are missed);
* 2025-05  the supervisors accept and decide again;
* 管控措施已落实: for most hazards whose measure is immediate (a control deadline: D-grade houses, 5类/4类
           bridges …) the unit reports the control in place within its days, a few late, a few never (管控逾期);
           drawn with their own seed, so the rest of the story is the same draws as before;
* 2024-07  the district government (QZF) issues 挂牌督办 notices on a few 重大 hazards past their deadline
           (督办通知书编号, 督办期限, 督办要求), and confirms the 核销 (2025-06) of those accepted since;
* 2025-05  a supervising department decides one open 一般 house hazard is 重大 (认定为重大, with its reason);
* two rows that must be refused, so the receipts show what a refusal looks like: an unknown hazard
  number, and a town reporting on another unit's hazard.

Who answers for a hazard is the ledger's responsible unit (an enterprise by its credit code for a
hazchem site or pipeline); who accepts and decides extensions is the hazard's sector department (the ledger's
sector_supervisor, from reference/supervision.csv: 住建 for houses and bridges, 教育 for schools, 卫健 for
hospitals, 民政 for elderly homes, 应急 for hazardous chemicals, 发改 for pipelines, the government for a
department's own). Some enterprises never
answer: their hazards stay 待整改 and overdue, as in a real programme. Hazard numbers derive from asset
and rule ids, so the files stay valid while the survey and the rules stay the same.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from pipeline.platform.clock import SAMPLE_MARKER
from pipeline.registries import units as registry
from pipeline.registries.templates import load_template

AS_OF = dt.date(2025, 6, 30)  # the date the sample's story stops (data_raw/样例数据.yaml)
ENCODINGS = {"T107": "gbk", "T203": "gbk"}  # towns whose clerks save CSV from an old Excel
SILENT_ENTERPRISES = 0.3  # share of enterprises that never send feedback
START_SHARE = 0.75  # of a unit's hazards started in 2023-10; the rest start late or never
LATE_START = 0.45  # of the not-yet-started, per later batch
DONE_SHARE = {"2024-05": 0.40, "2025-04": 0.45}  # of the hazards under way, reported done in the batch
PASS_SHARE = 0.9  # acceptances that pass
ACCEPT_SHARE = 0.85  # of the hazards awaiting acceptance, inspected in an acceptance batch (the rest wait)
EXTENSION_SHARE = 0.7  # of the started ones, asking for more time (village reinforcement waits for funds)
MISSED_REVIEW = 0.15  # controls whose review is not reported in a batch
PEOPLE = ["马建国", "杨秀兰", "丁学明", "金海燕", "李志刚", "周玉梅", "海丽", "田志军"]
ACCEPTORS = ["张伟、王振华", "马国强、李娟", "杨帆、丁海"]
MEASURES = {
    "整改中": [
        "已委托鉴定单位进场检测",
        "已编制加固方案，正在招标",
        "已组织施工队进场加固",
        "已拆除危险部位，正在修复",
    ],
    "已整改待验收": ["加固施工完成，申请验收", "已拆除重建，申请验收", "危险部位已拆除并封闭，申请验收"],
    "管控中": ["设置警示标志，禁止人员居住", "人员已搬离，围挡封闭", "限载限速通行，安排专人巡查"],
    "复核": ["管控措施落实，按期复核", "监测数据无异常，继续管控"],
}
MONITORING = ["每周巡查一次，雨季加密", "每月专业监测一次", "网格员每日巡查"]
CONTROL_SEED = 26  # the 管控措施已落实 reports draw from their own generator (issue 26 §4)
CONTROL_LATE, CONTROL_NEVER = 0.1, 0.05  # of the hazards with a control deadline: reported late, never reported
CONTROLS = {  # by the hazard number's kind prefix
    "JZ": ["已停止使用，人员全部疏散，设置警戒线和警示标志", "已停止使用并撤离人员，危险区域围挡封闭"],
    "QL": ["已封闭交通，设置绕行标志，专人值守", "已设置限载限速标志，安排专人巡查"],
    "WH": ["已停止在该建筑内生产和储存，物料已转移至合格库房"],
    "GD": ["已降压运行，加密巡线，落实泄漏应急处置措施"],
    "DZ": ["已落实专人监测，明确预警信号和撤离路线，汛期和震后加密巡查"],
    "BN": ["已在场所公示震后不得使用，另行指定临时避难场地"],
    "SK": ["已空库运行，落实控制运用和专人巡查值守"],
}


@dataclass
class Hazard:
    no: str
    unit: str
    grade: str
    control: bool
    deadline: dt.date
    found: dt.date
    supervisor: str  # the sector department that accepts and decides extensions (the ledger's sector_supervisor)
    control_deadline: dt.date | None = None  # an immediate measure's control deadline
    status: str = "待整改"
    person: str = ""
    rows: list[tuple[str, dict]] = field(default_factory=list)  # (batch, row) written for it


class Programme:
    def __init__(self, hazards: list[Hazard], rng: np.random.Generator):
        self.hazards = hazards
        self.rng = rng
        self.files: dict[tuple[str, str], list[dict]] = {}
        self.asked: list[Hazard] = []

    def add(self, unit: str, batch: str, row: dict) -> None:
        self.files.setdefault((unit, batch), []).append(row)

    def row(self, h: Hazard, status: str, date: str, measures: str | None = None, **extra) -> dict:
        measures = measures or str(self.rng.choice(MEASURES[status]))
        return {"hazard_no": h.no, "status": status, "measures": measures, "person": h.person,
                "report_date": date, **extra}  # fmt: skip

    def start(self, h: Hazard, batch: str, date: str) -> None:
        h.person = h.person or str(self.rng.choice(PEOPLE))
        status = "管控中" if h.control or self.rng.random() < 0.03 else "整改中"
        extra: dict = {}
        if status == "管控中":
            extra["monitoring"] = str(self.rng.choice(MONITORING))
        elif self.rng.random() < EXTENSION_SHARE:
            after = max(h.deadline, dt.date.fromisoformat(date))
            extra.update(extend_to=(after + dt.timedelta(days=int(self.rng.choice([365, 548, 730])))).isoformat(),
                         extend_reason="加固资金待区级财政下达")  # fmt: skip
            self.asked.append(h)
        if h.grade == "重大":  # 五落实: funds, a finish date and an emergency plan, besides person and measures
            extra.update(funds_wan=f"{self.rng.uniform(5, 80):.1f}", plan_finish="2025-12-31",
                         plan_no=f"LT-YA-{date[:4]}-{self.rng.integers(1, 400):03d}")  # fmt: skip
        self.add(h.unit, batch, self.row(h, status, date, **extra))
        h.status = status

    def done(self, h: Hazard, batch: str, date: str) -> None:
        self.add(h.unit, batch, self.row(h, "已整改待验收", date, funds_wan=f"{self.rng.uniform(0.5, 30):.1f}"))
        h.status = "已整改待验收"

    def review(self, h: Hazard, batch: str, date: str) -> None:
        self.add(h.unit, batch, self.row(h, "管控中", date, measures=str(self.rng.choice(MEASURES["复核"])),
                                         monitoring=str(self.rng.choice(MONITORING))))  # fmt: skip

    def accept(self, h: Hazard, batch: str, date: str) -> None:
        supervisor = h.supervisor
        passed = self.rng.random() < PASS_SHARE
        acceptor = str(self.rng.choice(ACCEPTORS))
        row = self.row(h, "已销号" if passed else "整改中", date,
                       measures="现场验收合格，同意销号" if passed else "验收不通过：加固不到位，退回整改",
                       acceptor=acceptor, accept_date=date, accept_result="通过" if passed else "不通过")  # fmt: skip
        row["person"] = acceptor.split("、")[0]
        if h.grade == "重大":  # accepted on an assessment report
            row["assessment_no"] = f"LT-PG-{date[:4]}-{self.rng.integers(1, 200):03d}"
        self.add(supervisor, batch, row)
        h.status = "已销号" if passed else "整改中"

    def decide_extensions(self, batch: str, date: str) -> None:
        asked, self.asked = self.asked, []
        for h in asked:
            approved = self.rng.random() < 0.85
            supervisor = h.supervisor
            self.add(supervisor, batch, {
                "hazard_no": h.no, "status": h.status, "person": "张伟", "report_date": date,
                "measures": "同意延期，按期督查" if approved else "资金已落实，不同意延期，按原时限完成",
                "extension_decision": "批准" if approved else "不批准"})  # fmt: skip

    def under(self, *statuses: str, found_by: str | None = None) -> list[Hazard]:
        """Hazards in these statuses (and found by the date `found_by`: a unit reports only on what it knows)."""
        by = dt.date.fromisoformat(found_by) if found_by else dt.date.max
        return [h for h in self.hazards if h.status in statuses and h.found <= by]

    def share(self, hazards: list[Hazard], p: float) -> list[Hazard]:
        return [h for h in hazards if self.rng.random() < p]


def _hazards(con: duckdb.DuckDBPyConnection, rng: np.random.Generator) -> list[Hazard]:
    rows = con.execute(
        "SELECT hazard_no, responsible_unit, hazard_grade, rectification = 'control', deadline, found_date, "
        "sector_supervisor, control_deadline FROM hazards WHERE status = '待整改' ORDER BY hazard_no"
    ).fetchall()
    enterprises = sorted({u for _, u, *_ in rows if u in registry.units() and registry.units()[u].kind == "enterprise"})
    silent = {u for u in enterprises if rng.random() < SILENT_ENTERPRISES}
    return [Hazard(no, unit, grade, bool(control), deadline, found, supervisor or registry.TOP_UNIT, control_due)
            for no, unit, grade, control, deadline, found, supervisor, control_due in rows
            if unit and unit not in silent]  # fmt: skip


def programme(con: duckdb.DuckDBPyConnection, rng: np.random.Generator) -> dict[tuple[str, str], list[dict]]:
    """(unit, batch) -> feedback rows, batch by batch in date order."""
    p = Programme(_hazards(con, rng), rng)
    _control_reports(p)
    for h in p.share(p.under("待整改", found_by="2023-10-20"), START_SHARE):
        p.start(h, "2023-10", "2023-10-20")
    p.decide_extensions("2023-11", "2023-11-06")
    for batch, date, accept_batch, accept_date in (("2024-05", "2024-05-20", "2024-06", "2024-06-18"),
                                                   ("2025-04", "2025-04-22", "2025-05", "2025-05-27")):  # fmt: skip
        for h in p.share(p.under("整改中"), DONE_SHARE[batch]):
            p.done(h, batch, date)
        for h in p.under("管控中"):
            if rng.random() > MISSED_REVIEW:
                p.review(h, batch, date)
        for h in p.share(p.under("待整改", found_by=date), LATE_START):
            p.start(h, batch, date)
        for h in p.share(p.under("已整改待验收"), ACCEPT_SHARE):
            p.accept(h, accept_batch, accept_date)
        p.decide_extensions(accept_batch, accept_date)
        if accept_batch == "2024-06":
            noticed = _issue_notices(p, "2024-07", "2024-07-01")
    _close_notices(p, noticed, "2025-06", "2025-06-10")
    _decide_major(p, "2025-05", "2025-05-27")
    _designed_refusals(p, con)
    return {k: v for k, v in p.files.items() if v}


def _control_reports(p: Programme) -> None:
    """管控措施已落实 within the control deadline for most hazards that have one, late for a few, never for some."""
    crng = np.random.default_rng(CONTROL_SEED)
    for h in p.hazards:
        if h.control_deadline is None:
            continue
        draw = crng.random()
        if draw < CONTROL_NEVER:
            continue
        days = (h.control_deadline - h.found).days
        date = h.found + dt.timedelta(days=int(crng.integers(0, days + 1)))
        if draw < CONTROL_NEVER + CONTROL_LATE:
            date = h.control_deadline + dt.timedelta(days=int(crng.integers(3, 30)))
        if date > AS_OF:
            continue
        row = p.row(h, "管控措施已落实", date.isoformat(), str(crng.choice(CONTROLS[h.no[:2]])))
        row["person"] = str(crng.choice(PEOPLE))  # h.person is left to the start (the story's draws unchanged)
        p.add(h.unit, f"{date:%Y-%m}-管控", row)


NOTICES = 4  # 挂牌督办 notices the government issues in the sample (no draws: the rest of the story is unchanged)
REQUIREMENT = "督办期限内完成整改并书面报区安委会办公室；整改完成前落实管控措施，确保人员安全"


def _issue_notices(p: Programme, batch: str, date: str) -> list[Hazard]:
    """QZF's 挂牌督办 on the first open 重大 hazards past their deadline (issue 26 §3: a decision, with a notice)."""
    day = dt.date.fromisoformat(date)
    chosen = [h for h in p.hazards if h.grade == "重大" and h.status in ("待整改", "整改中") and h.deadline < day]
    chosen = chosen[:NOTICES]
    for i, h in enumerate(chosen, 1):
        p.add(registry.TOP_UNIT, batch, {"hazard_no": h.no, "status": h.status, "measures": REQUIREMENT,
                                         "person": "王立新", "report_date": date, "decision": "挂牌督办",
                                         "notice_no": f"利政安督〔{day.year}〕{i}号",
                                         "notice_deadline": f"{day.year}-12-31"})  # fmt: skip
    return chosen


def _close_notices(p: Programme, noticed: list[Hazard], batch: str, date: str) -> None:
    """The issuer confirms the 核销 of the supervised hazards accepted (已销号) since."""
    for h in noticed:
        if h.status == "已销号":
            p.add(registry.TOP_UNIT, batch, {"hazard_no": h.no, "status": "已销号", "person": "王立新",
                                             "report_date": date, "decision": "督办核销",
                                             "measures": "经核查已整改并验收销号，同意核销"})  # fmt: skip


def _decide_major(p: Programme, batch: str, date: str) -> None:
    """A supervising department decides that one open 一般 village-house hazard is 重大 (认定为重大, its reason)."""
    h = next((h for h in p.hazards if h.grade == "一般" and h.status == "待整改" and h.no.startswith("JZ-")
              and registry.units().get(h.unit) and registry.units()[h.unit].kind == "town"), None)  # fmt: skip
    if h is None:
        return
    p.add(h.supervisor, batch, {
        "hazard_no": h.no, "status": h.status, "person": "张伟", "report_date": date, "decision": "认定为重大",
        "measures": "该房屋兼作村民议事和集会场所，人员密集，隐患长期未整改，依据16号令第三条认定为重大隐患"})  # fmt: skip
    h.grade = "重大"


def _designed_refusals(p: Programme, con: duckdb.DuckDBPyConnection) -> None:
    """An unknown hazard number, and T100 reporting on a hazard of T107's."""
    p.add("T100", "2023-10", {"hazard_no": "JZ-640302100-999999-B01", "status": "整改中", "measures": "已组织排查",
                              "person": "马建国", "report_date": "2023-10-20"})  # fmt: skip
    other = next(h for h in p.hazards if h.unit == "T107")
    p.add("T100", "2023-10", {"hazard_no": other.no, "status": "整改中", "measures": "已组织排查", "person": "马建国",
                              "report_date": "2023-10-20"})  # fmt: skip


def write_sample_feedback(db: Path, out_dir: Path, seed: int = 2024) -> list[Path]:
    template = load_template("feedback")
    headers = [f.header for f in template.fields]
    keys = [f.key for f in template.fields]
    con = duckdb.connect(str(db), read_only=True)
    try:
        registry.load_enterprises(con)
        files = programme(con, np.random.default_rng(seed))
    finally:
        con.close()
    marker = out_dir / SAMPLE_MARKER
    marker.write_text(
        f"# 样例数据：利通区地震风险隐患排查整治的示例（虚构数据），故事截至下列日期；\n"
        f"# 在样例数据上运行时，区里的“今天”即为该日期，所有输出注明“样例数据，截至…”。\n"
        f"as_of: {AS_OF.isoformat()}\n",
        encoding="utf-8",
    )
    written = [marker]
    for (unit, batch), rows in sorted(files.items()):
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(headers)
        w.writerows([[row.get(k, "") for k in keys] for row in rows])
        path = out_dir / "feedback" / unit / batch / f"{unit}_整改反馈_{batch}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue().encode(ENCODINGS.get(unit, "utf-8-sig")))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=Path("output/litong.duckdb"))
    parser.add_argument("--out", type=Path, default=Path("data_raw"))
    args = parser.parse_args(argv)
    for p in write_sample_feedback(args.db, args.out):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
