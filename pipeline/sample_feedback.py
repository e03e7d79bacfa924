"""Sample rectification feedback for the bundled district, so that the sample shows the closed loop.

    python -m pipeline.sample_feedback --db output/litong.duckdb --out data_raw

Reads the ledger of a run of the sample survey and writes what units would send back a few months
later, in the feedback template's Chinese headers, under data_raw/feedback/<unit>/<batch>/:

* 2023-10: towns and departments report work started (整改中) on part of their hazards, a few
  with an extension request, and control measures (管控中) where a hazard cannot be removed soon
  (with a monitoring plan, and an emergency-plan number for 重大 ones);
* 2023-12: part of the work is reported done (已整改待验收), with the money spent;
* 2024-01: the supervising unit (the bureau, YJJ) accepts most of it (已销号) and sends a few back
  (不通过 -> 整改中);
* two rows that must be refused, so the receipts show what a refusal looks like: an unknown
  hazard number, and a town reporting on another unit's hazard.

Hazard numbers are derived from asset and rule ids, so the files stay valid while the survey and
the rules stay the same; after a rule change, re-run this (rows for vanished hazards are refused).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
from pathlib import Path

import duckdb
import numpy as np

from pipeline.intake.schema import load_template

PICKED_SHARE = 0.12  # of each unit's hazards reported on (feedback is applied row by row: ~10 ms a row)
UNITS = {"T100": "utf-8-sig", "T107": "gbk", "T103": "utf-8-sig", "ZJJ": "utf-8-sig", "JYJ": "utf-8-sig"}
SUPERVISOR = "YJJ"
PEOPLE = ["马建国", "杨秀兰", "丁学明", "金海燕", "李志刚", "周玉梅"]
MEASURES = {
    "整改中": [
        "已委托鉴定单位进场检测",
        "已编制加固方案，正在招标",
        "已组织施工队进场加固",
        "已拆除危险部位，正在修复",
    ],
    "已整改待验收": ["加固施工完成，申请验收", "已拆除重建，申请验收", "危险部位已拆除并封闭，申请验收"],
    "管控中": ["设置警示标志，禁止人员居住", "人员已搬离，围挡封闭", "限载限速通行，安排专人巡查"],
}
MONITORING = ["每周巡查一次，雨季加密", "每月专业监测一次", "网格员每日巡查"]


def _rows(con: duckdb.DuckDBPyConnection, rng: np.random.Generator) -> dict[tuple[str, str], list[dict]]:
    """(unit, batch) -> feedback rows."""
    files: dict[tuple[str, str], list[dict]] = {}
    asked: list[str] = []  # extension requests, decided by the supervisor in 2023-11
    done: list[tuple[str, str, str]] = []  # (hazard_no, unit, grade) reported done, for the acceptance batch
    for unit in UNITS:
        hazards = con.execute(
            "SELECT hazard_no, hazard_grade, rectification, deadline FROM hazards WHERE responsible_unit = ? "
            "AND status = '待整改' ORDER BY hazard_no",
            [unit],
        ).fetchall()
        picked = [h for h in hazards if rng.random() < PICKED_SHARE]
        started, later = [], []
        for hazard_no, grade, rectification, deadline in picked:
            person = str(rng.choice(PEOPLE))
            if rectification == "control" or rng.random() < 0.04:
                row = _row(hazard_no, unit, "管控中", rng, person, "2023-10-20",
                           monitoring=str(rng.choice(MONITORING)),
                           plan_no=f"LT-YA-2023-{rng.integers(1, 400):03d}" if grade == "重大" else "")  # fmt: skip
            else:
                row = _row(hazard_no, unit, "整改中", rng, person, "2023-10-20")
                if rng.random() < 0.08:
                    after = max(deadline, dt.date(2023, 10, 20))  # an extension runs past the deadline and the report
                    row.update(extend_to=(after + dt.timedelta(days=182)).isoformat(),
                               extend_reason="加固资金待县级财政下达")  # fmt: skip
                    asked.append(hazard_no)
                if rng.random() < 0.5:
                    later.append(_row(hazard_no, unit, "已整改待验收", rng, person, "2023-12-15",
                                      funds_wan=f"{rng.uniform(0.5, 30):.1f}"))  # fmt: skip
                    done.append((hazard_no, unit, grade))
            if grade == "重大":  # 五落实: funds, a finish date and an emergency plan, besides person and measures
                row.setdefault("funds_wan", f"{rng.uniform(5, 80):.1f}")
                row["plan_finish"] = "2024-09-30"
                row["plan_no"] = row.get("plan_no") or f"LT-YA-2023-{rng.integers(1, 400):03d}"
            started.append(row)
        files[(unit, "2023-10")] = started
        files[(unit, "2023-12")] = later
    files[("T100", "2023-10")].append(_row("JZ-640302100-999999-B01", "T100", "整改中", rng, "马建国", "2023-10-20"))
    other = next(h for h, u, _ in done if u != "T100")
    files[("T100", "2023-10")].append(_row(other, "T100", "整改中", rng, "马建国", "2023-10-20"))
    accepted = []
    for hazard_no, unit, grade in done:
        if unit.startswith("T") and rng.random() < 0.8:
            passed = rng.random() < 0.9
            accepted.append(_row(hazard_no, SUPERVISOR, "已销号" if passed else "整改中", rng, "张伟", "2024-01-15",
                                 acceptor="张伟、王振华", accept_date="2024-01-12",
                                 accept_result="通过" if passed else "不通过"))  # fmt: skip
            if not passed:
                accepted[-1]["measures"] = "验收不通过：加固不到位，退回整改"
            if grade == "重大":  # accepted on an assessment report
                accepted[-1]["assessment_no"] = f"LT-PG-2024-{rng.integers(1, 200):03d}"
    files[(SUPERVISOR, "2024-01")] = accepted
    files[(SUPERVISOR, "2023-11")] = [_decision(h, rng) for h in asked]
    return {k: v for k, v in files.items() if v}


def _decision(hazard_no: str, rng: np.random.Generator) -> dict:
    """The supervisor decides an extension request: most are approved, some refused (the deadline stays)."""
    approved = rng.random() < 0.8
    return {"hazard_no": hazard_no, "unit": SUPERVISOR, "status": "整改中", "person": "张伟", "report_date": "2023-11-06",
            "measures": "同意延期，按期督查" if approved else "资金已落实，不同意延期，按原时限完成",
            "extension_decision": "批准" if approved else "不批准"}  # fmt: skip


def _row(hazard_no: str, unit: str, status: str, rng: np.random.Generator, person: str, date: str, **extra) -> dict:
    measures = str(rng.choice(MEASURES.get(status, MEASURES["整改中"])))
    return {"hazard_no": hazard_no, "unit": unit, "status": status, "measures": measures, "person": person,
            "report_date": date, **extra}  # fmt: skip


def write_sample_feedback(db: Path, out_dir: Path, seed: int = 2024) -> list[Path]:
    template = load_template("feedback")
    headers = [f.header for f in template.fields]
    keys = [f.key for f in template.fields]
    con = duckdb.connect(str(db), read_only=True)
    try:
        files = _rows(con, np.random.default_rng(seed))
    finally:
        con.close()
    written = []
    for (unit, batch), rows in sorted(files.items()):
        encoding = UNITS.get(unit, "utf-8-sig")
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(headers)
        w.writerows([[row.get(k, "") for k in keys] for row in rows])
        path = out_dir / "feedback" / unit / batch / f"{unit}_整改反馈_{batch}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue().encode(encoding))
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
