"""Files as departments really make them, and as a clumsy or hostile one would: each test drops real
bytes (damaged workbooks, title rows, quoted line breaks, shifted rows, GBK mappings, …) and checks
that one bad file or row never costs the others, with a Chinese reason on a receipt."""

from __future__ import annotations

import csv
import io
import re
import zipfile

import duckdb
import openpyxl
import pytest

from pipeline.intake import ingest as ingest_module
from pipeline.intake.ingest import ingest_kind
from pipeline.intake.receipts import receipt_path, write_receipts
from pipeline.intake.validate import validate_kind
from pipeline.platform import store
from pipeline.registries.templates import load_template
from tests.conftest import csv_bytes, example_row

HEADERS = [f.header for f in load_template("buildings").fields]


def xlsx_bytes(sheets: dict[str, list[list]]) -> bytes:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def csv_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return buf.getvalue()


def rows_of(kind: str, *records: dict[str, str]) -> list[list[str]]:
    """Header and records as lists of cells, in the template's column order."""
    t = load_template(kind)
    return [[f.header for f in t.fields], *([r.get(k, "") for k in t.keys] for r in records)]


def replace_in_zip(data: bytes, member: str, change) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            content = src.read(item.filename)
            dst.writestr(item, change(content) if item.filename == member else content)
    return out.getvalue()


def receipt(deployment, rel_path: str, unit: str, kind: str | None = None) -> dict[str, list]:
    """The receipt's sheets: 回执 as {item: [values]}, the others as lists of rows."""
    wb = openpyxl.load_workbook(receipt_path(deployment.output / "receipts", rel_path, unit, kind))
    out: dict[str, list] = {}
    for row in wb["回执"].iter_rows(min_row=2, values_only=True):
        out.setdefault(row[0], []).append(row[1])
    for name in ("退回明细", "问题明细", "提示"):
        out[name] = list(wb[name].iter_rows(min_row=2, values_only=True))
    return out


def intake_with_receipts(deployment, *kinds: str) -> dict:
    results = deployment.intake(*kinds)
    with store.connect(deployment.db) as con:
        for kind in kinds:
            write_receipts(con, deployment.output / "receipts", kind)
    return results


def file_problems(deployment) -> dict[str, str]:
    return dict(deployment.query("SELECT rel_path, problem_zh FROM intake_files WHERE status <> 'ingested'"))


# --- 1. authority: who may upload what, and when ------------------------------------------


def test_a_unit_uploads_only_the_kinds_its_template_lists(deployment):
    deployment.drop("bridges", "q.csv", csv_bytes("bridges", [example_row("bridges")]), unit="YJJ")
    intake_with_receipts(deployment, "bridges")
    problem = file_problems(deployment)["bridges/YJJ/2023-1/q.csv"]
    assert "YJJ（利通区应急管理局（地震局））不是“桥梁”调查的填报单位" in problem
    assert "ZJJ（利通区住房城乡建设和交通局）" in problem
    assert deployment.query("SELECT count(*) FROM stg_bridges") == [(0,)]
    assert receipt(deployment, "bridges/YJJ/2023-1/q.csv", "YJJ")["文件问题"] == [problem]


def test_an_unknown_survey_round_is_refused_with_a_receipt(deployment):
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", [example_row("buildings")]), rnd="9999")
    intake_with_receipts(deployment, "buildings")
    problem = file_problems(deployment)["buildings/ZJJ/9999/a.csv"]
    assert problem.startswith("文件夹“9999”不是区里确定的调查轮次")
    assert deployment.query("SELECT count(*) FROM stg_buildings") == [(0,)]
    assert receipt(deployment, "buildings/ZJJ/9999/a.csv", "ZJJ")["文件问题"] == [problem]


def test_a_town_uploads_its_village_houses(deployment):
    deployment.drop("buildings", "村.csv", csv_bytes("buildings", [example_row("buildings")]), unit="T100")
    assert deployment.intake("buildings")["buildings"].valid == 1
    assert file_problems(deployment) == {}


def test_feedback_batches_are_free_folder_names_for_any_registered_unit(deployment):
    from tests.test_ledger import fb

    deployment.drop("feedback", "f.csv", csv_bytes("feedback", [fb("JZ-X-B09", "整改中")]), unit="T105", rnd="第3批")
    deployment.intake("feedback")
    assert file_problems(deployment) == {}


# --- 2. one bad file never stops the others -----------------------------------------------


def _good_and(deployment, name: str, data: bytes) -> None:
    """The bad file sorts before a good one: the good one must still be read."""
    deployment.drop("buildings", name, data)
    deployment.drop("buildings", "z_good.csv", csv_bytes("buildings", [example_row("buildings", building_id="G1")]))


def _workbook() -> bytes:
    return xlsx_bytes({"填报表": rows_of("buildings", example_row("buildings", building_id="X1"))})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda xml: xml[: len(xml) // 2], "XLSX文件已损坏：工作表“填报表”"),  # sheet XML cut off
        (
            lambda xml: re.sub(rb'<c r="A2" t="inlineStr"><is><t>[^<]*</t></is>', b'<c r="A2" t="n"><v>abc</v>', xml),
            "XLSX文件已损坏：工作表“填报表”第2行",
        ),  # a numeric cell holding text
    ],
    ids=["damaged-sheet-xml", "text-in-numeric-cell"],
)
def test_a_damaged_workbook_is_refused_and_later_files_go_through(deployment, change, expected):
    _good_and(deployment, "a_bad.xlsx", replace_in_zip(_workbook(), "xl/worksheets/sheet1.xml", change))
    intake_with_receipts(deployment, "buildings")
    assert expected in file_problems(deployment)["buildings/ZJJ/2023-1/a_bad.xlsx"]
    assert deployment.query("SELECT building_id FROM stg_buildings") == [("G1",)]
    assert receipt(deployment, "buildings/ZJJ/2023-1/a_bad.xlsx", "ZJJ")["处理结果"][0].startswith("文件无法读取")


@pytest.mark.parametrize(
    "error",
    [duckdb.Error("Binder Error: boom"), duckdb.OutOfMemoryException("out of memory"), MemoryError(), KeyError("x")],
    ids=["duckdb-error", "duckdb-oom", "memory-error", "any-error"],
)
def test_any_error_reading_one_file_is_its_refusal(deployment, monkeypatch, error):
    real = ingest_module.read_csv

    def failing(path, choose):
        if path.name == "a_bad.csv":
            raise error
        return real(path, choose)

    monkeypatch.setattr(ingest_module, "read_csv", failing)
    _good_and(deployment, "a_bad.csv", csv_bytes("buildings", [example_row("buildings", building_id="X1")]))
    deployment.intake("buildings")
    problem = file_problems(deployment)["buildings/ZJJ/2023-1/a_bad.csv"]
    assert problem.startswith(("读取文件时出错", "文件太大")) and "boom" not in problem
    assert deployment.query("SELECT building_id FROM stg_buildings") == [("G1",)]


def test_an_interrupt_is_not_swallowed(deployment, monkeypatch):
    def interrupted(path, choose):
        raise KeyboardInterrupt

    monkeypatch.setattr(ingest_module, "read_csv", interrupted)
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", [example_row("buildings")]))
    with pytest.raises(KeyboardInterrupt):
        deployment.intake("buildings")


def test_a_damaged_new_version_does_not_retire_the_good_old_one(deployment):
    rows = [example_row("buildings", building_id="B1"), example_row("buildings", building_id="B2")]
    deployment.drop("buildings", "镇.csv", csv_bytes("buildings", rows))
    intake_with_receipts(deployment, "buildings")
    deployment.drop("buildings", "镇.csv", bytes([0x81, 0x20, 0xFF, 0x00]) * 100)  # version 2: garbage
    intake_with_receipts(deployment, "buildings")
    assert deployment.query("SELECT count(*) FROM stg_buildings") == [(2,)]  # version 1's rows stay in use
    versions = deployment.query("SELECT version, status, is_latest, is_current FROM intake_files ORDER BY version")
    assert versions == [(1, "ingested", False, True), (2, "unreadable", True, True)]
    r = receipt(deployment, "buildings/ZJJ/2023-1/镇.csv", "ZJJ")
    assert r["文件版本"] == [2]
    assert r["处理结果"] == ["本版本无法读取，未接收；第1版（接收2行）仍在使用，请修改后重新上传"]
    assert "编码无法识别" in r["文件问题"][0]
    deployment.drop("buildings", "镇.csv", csv_bytes("buildings", rows[:1]))  # version 3: readable again
    deployment.intake("buildings")
    assert deployment.query("SELECT version FROM intake_files WHERE is_current") == [(3,)]
    assert deployment.query("SELECT building_id FROM stg_buildings") == [("B1",)]


def test_running_out_of_memory_on_one_file_keeps_the_other_files_rows(deployment):
    big = [example_row("buildings", building_id=f"B{i}", address="金积镇金积村三组" * 5) for i in range(50_000)]
    deployment.drop("buildings", "big.csv", csv_bytes("buildings", big))
    deployment.drop("buildings", "small.csv", csv_bytes("buildings", [example_row("buildings", building_id="S1")]))
    with store.connect(deployment.db) as con:
        ingest_kind(con, deployment.data_raw, "buildings")
        con.execute("SET memory_limit = '48MB'")  # normalising no longer sorts the wide rows: 64 MB holds 50 k now
        result = validate_kind(con, load_template("buildings"))
    assert (result.valid, result.quarantined) == (1, 0)
    assert deployment.query("SELECT building_id FROM stg_buildings") == [("S1",)]
    assert file_problems(deployment)["buildings/ZJJ/2023-1/big.csv"].startswith("文件太大，服务器内存不足")


# --- 3. files as departments really make them ---------------------------------------------


def test_a_two_sheet_hazchem_workbook_feeds_both_kinds(deployment):
    site = example_row("hazchem_sites")
    tank = example_row("hazchem_inventory", site_id=site["site_id"])
    data = xlsx_bytes({
        "单位基本情况": rows_of("hazchem_sites", site),
        "储存明细": rows_of("hazchem_inventory", tank),
        "备注": [["说明"], ["本表由安全员填写"]],
    })  # fmt: skip
    deployment.drop("hazchem_sites", "危化.xlsx", data, unit="YJJ")
    results = intake_with_receipts(deployment, "hazchem_sites", "hazchem_inventory")
    assert (results["hazchem_sites"].valid, results["hazchem_inventory"].valid) == (1, 1)
    registered = deployment.query("SELECT kind, sheet_name, rel_path FROM intake_files ORDER BY kind")
    assert registered == [
        ("hazchem_inventory", "储存明细", "hazchem_sites/YJJ/2023-1/危化.xlsx"),
        ("hazchem_sites", "单位基本情况", "hazchem_sites/YJJ/2023-1/危化.xlsx"),
    ]
    notes = receipt(deployment, "hazchem_sites/YJJ/2023-1/危化.xlsx", "YJJ")["说明"]
    assert "工作表“备注”的表头与任何调查模板都不符，未读取" in notes
    assert "工作表“储存明细”按“危险化学品储存明细”读取，见该类别的回执" in notes
    inventory = receipt(deployment, "hazchem_sites/YJJ/2023-1/危化.xlsx", "YJJ", "hazchem_inventory")
    assert inventory["接收行数"] == [1]
    # an unchanged workbook adds nothing on the next run, and its inventory stays current
    deployment.intake("hazchem_sites", "hazchem_inventory")
    assert deployment.query("SELECT count(*), count(*) FILTER (WHERE is_current) FROM intake_files") == [(2, 2)]
    # a damaged new version keeps both kinds' rows in use
    path = deployment.drop("hazchem_sites", "危化.xlsx", b"PK\x03\x04 damaged", unit="YJJ")
    results = deployment.intake("hazchem_sites", "hazchem_inventory")
    assert (results["hazchem_sites"].valid, results["hazchem_inventory"].valid) == (1, 1)
    assert deployment.query("SELECT kind, version FROM intake_files WHERE status = 'unreadable' ORDER BY kind") == [
        ("hazchem_inventory", 2), ("hazchem_sites", 2)]  # fmt: skip
    # removed: the inventory rows go too, though only the sites folder is read again (as the sensor does)
    path.unlink()
    with store.connect(deployment.db) as con:
        ingest_kind(con, deployment.data_raw, "hazchem_sites")
        validate_kind(con, load_template("hazchem_inventory"))
    assert deployment.query("SELECT count(*) FROM stg_hazchem_inventory") == [(0,)]


def _with_title_rows(rows: list[list[str]]) -> list[list[str]]:
    width = len(rows[0])
    return [
        ["利通区房屋建筑抗震隐患排查表", *[""] * (width - 1)],
        ["填报单位：金积镇人民政府", *[""] * (width - 1)],
        *rows,
    ]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_title_rows_above_the_header_are_skipped_and_rows_keep_excel_numbers(deployment, suffix):
    rows = _with_title_rows(rows_of("buildings", example_row("buildings", building_id="B1"),
                                    example_row("buildings", building_id="B2", use="住房")))  # fmt: skip
    if suffix == ".csv":
        data = csv_text(rows).encode("gbk")
    else:
        data = xlsx_bytes({"Sheet1": rows})
    deployment.drop("buildings", "表" + suffix, data)
    result = deployment.intake("buildings")["buildings"]
    assert (result.valid, result.quarantined) == (1, 1)
    assert deployment.query("SELECT row_no, record_id FROM quarantine") == [(5, "B2")]  # as Excel shows it
    assert deployment.query("SELECT header_row FROM intake_files") == [(3,)]


def test_a_title_row_of_one_cell_in_a_hand_made_csv(deployment):
    body = csv_bytes("buildings", [example_row("buildings")]).decode()
    deployment.drop("buildings", "a.csv", ("房屋建筑调查表\n\n" + body).encode())
    assert deployment.intake("buildings")["buildings"].valid == 1
    assert deployment.query("SELECT row_no FROM stg_buildings") == [(4,)]


def test_a_quoted_line_break_keeps_the_file_and_the_row_numbers(deployment):
    rows = [example_row("buildings", building_id="B1", address="金积镇金积村\n三组12号"),
            example_row("buildings", building_id="B2", use="住房")]  # fmt: skip
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", rows, "utf-8-sig", "\r\n"))
    result = deployment.intake("buildings")["buildings"]
    assert (result.valid, result.quarantined) == (1, 1)
    assert deployment.query("SELECT address FROM stg_buildings") == [("金积镇金积村\n三组12号",)]
    assert deployment.query("SELECT row_no FROM quarantine") == [(3,)]  # record 3, though line 4


def test_a_one_megabyte_cell_refuses_only_its_row_in_chinese(deployment):
    rows = [example_row("buildings", building_id="B1", address="金" * 1_000_000),
            example_row("buildings", building_id="B2")]  # fmt: skip
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", rows))
    intake_with_receipts(deployment, "buildings")
    assert deployment.query("SELECT building_id FROM stg_buildings") == [("B2",)]
    (message,) = deployment.query("SELECT message_zh FROM validation_failures WHERE check_id = 'read_problem'")[0]
    assert message.startswith("第2行：“详细地址”为“金金金")
    assert "内容过长（1000000个字符，上限2000个）" in message
    assert receipt(deployment, "buildings/ZJJ/2023-1/a.csv", "ZJJ")["退回行数"] == [1]


def test_a_row_with_more_values_than_the_header_is_quarantined(deployment):
    good = csv_text(rows_of("buildings", example_row("buildings", building_id="B1")))
    shifted = csv_text(rows_of("buildings", example_row("buildings", building_id="B2", address="金积村|三组"))[1:])
    data = good + shifted.replace("|", ",")  # the address's comma is not quoted
    deployment.drop("buildings", "a.csv", data.encode())
    intake_with_receipts(deployment, "buildings")
    assert deployment.query("SELECT building_id FROM stg_buildings") == [("B1",)]
    (reasons,) = deployment.query("SELECT reasons_zh FROM quarantine WHERE row_no = 3")[0]
    assert f"此行在表头以外的列（第{len(HEADERS) + 1}列起）还有内容“张伟”" in reasons.split("；")[0]
    assert "英文逗号而未加引号" in receipt(deployment, "buildings/ZJJ/2023-1/a.csv", "ZJJ")["退回明细"][0][3]


def test_a_short_row_is_padded_and_accepted(deployment):
    t = load_template("buildings")
    optional_last = [f.header for f in t.fields if f.required] + ["建筑名称"]
    row = example_row("buildings")
    values = [row[f.key] for f in t.fields if f.required]  # 建筑名称 left off the end of the row
    deployment.drop("buildings", "a.csv", csv_text([optional_last, values]).encode())
    assert deployment.intake("buildings")["buildings"].valid == 1
    assert deployment.query("SELECT name FROM stg_buildings") == [(None,)]


def test_an_empty_file_says_so(deployment):
    deployment.drop("buildings", "空.csv", b"")
    deployment.drop("buildings", "空2.csv", b"\r\n\r\n")
    deployment.intake("buildings")
    problems = file_problems(deployment)
    assert problems["buildings/ZJJ/2023-1/空.csv"].startswith("文件为空")
    assert problems["buildings/ZJJ/2023-1/空2.csv"].startswith("文件为空")


def test_excel_unicode_text_is_utf16_and_tab_delimited(deployment):
    rows = rows_of("buildings", example_row("buildings", address="金积镇, 三组"))
    data = "\r\n".join("\t".join(r) for r in rows).encode("utf-16")
    deployment.drop("buildings", "a.txt.csv", data)
    assert deployment.intake("buildings")["buildings"].valid == 1
    assert deployment.query("SELECT address FROM stg_buildings") == [("金积镇, 三组",)]


def _mapped_upload(deployment) -> None:
    headers = ["建筑物编号" if h == "房屋编码" else h for h in HEADERS]
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", [example_row("buildings")], headers=headers),
                    unit="WJJ")  # fmt: skip


def _write_mapping(deployment, text: str, encoding: str) -> None:
    (deployment.data_raw / "buildings" / "WJJ" / "列映射.csv").write_bytes(text.encode(encoding))


def test_a_gbk_mapping_is_read_and_changing_it_reprocesses_the_files(deployment):
    _mapped_upload(deployment)
    _write_mapping(deployment, "本单位列名,模板列名\r\n建筑物编号,建筑名称\r\n", "gbk")  # wrong: 编号 → 名称
    deployment.intake("buildings")
    assert "缺少必填列：“房屋编码”" in file_problems(deployment)["buildings/WJJ/2023-1/a.csv"]
    _write_mapping(deployment, "本单位列名,模板列名\r\n建筑物编号,房屋编码\r\n", "gbk")  # fixed, same upload
    assert deployment.intake("buildings")["buildings"].valid == 1
    versions = deployment.query("SELECT version, status, is_current FROM intake_files ORDER BY version")
    assert versions == [(1, "unreadable", False), (2, "ingested", True)]


def test_one_own_column_mapped_to_two_template_columns_names_the_mapping_line(deployment):
    _mapped_upload(deployment)
    _write_mapping(deployment, "本单位列名,模板列名\n建筑物编号,房屋编码\n建筑物编号,建筑名称\n", "utf-8")
    deployment.intake("buildings")
    problem = file_problems(deployment)["buildings/WJJ/2023-1/a.csv"]
    assert problem == ("列映射.csv第3行：本单位列名“建筑物编号”已在第2行对应模板列“房屋编码”，"
                       "不能再对应“建筑名称”（一列只能对应一个模板列）")  # fmt: skip


def test_a_duplicate_target_through_the_mapping_names_the_mapping(deployment):
    headers = ["建筑物编号" if h == "建筑名称" else h for h in HEADERS]  # keeps 房屋编码 too
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", [example_row("buildings")], headers=headers),
                    unit="WJJ")  # fmt: skip
    _write_mapping(deployment, "本单位列名,模板列名\n建筑物编号,房屋编码\n", "utf-8")
    deployment.intake("buildings")
    problem = file_problems(deployment)["buildings/WJJ/2023-1/a.csv"]
    assert (
        problem
        == "列“房屋编码”和列“建筑物编号”（列映射.csv第2行）都对应模板列“房屋编码”，请删除其中一列或修改列映射.csv"
    )


# --- 4. receipts ---------------------------------------------------------------------------


def test_receipts_never_overwrite_each_other(deployment):
    one = csv_bytes("buildings", [example_row("buildings", building_id="B1")])
    deployment.drop("buildings", "a.csv", one)
    deployment.drop(
        "buildings", "a.xlsx", xlsx_bytes({"Sheet1": rows_of("buildings", example_row("buildings", building_id="B2"))})
    )
    deployment.drop("buildings", "a.csv", one, rnd="2023-2")
    intake_with_receipts(deployment, "buildings")
    base = deployment.output / "receipts" / "ZJJ" / "buildings"
    found = sorted(p.relative_to(base).as_posix() for p in base.rglob("*.xlsx"))
    assert found == ["2023-1/a.csv_回执.xlsx", "2023-1/a.xlsx_回执.xlsx", "2023-2/a.csv_回执.xlsx"]
    assert receipt_path(deployment.output / "receipts", "feedback/T100/第3批/f.csv", "T100") == (
        deployment.output / "receipts" / "T100" / "feedback" / "第3批" / "f.csv_回执.xlsx"
    )


def test_an_unreadable_file_receipt_lists_the_columns_found_and_the_full_sha256(deployment):
    deployment.drop("buildings", "a.csv", "房屋编码,详细地址,备注\nB1,金积镇,\n".encode())
    intake_with_receipts(deployment, "buildings")
    r = receipt(deployment, "buildings/ZJJ/2023-1/a.csv", "ZJJ")
    assert r["文件中找到的列"] == ["“房屋编码”，“详细地址”，“备注”"]
    (sha,) = deployment.query("SELECT sha256 FROM intake_files")[0]
    assert r["文件指纹(SHA-256)"] == [sha] and len(sha) == 64


# --- 5. free text is kept as typed ---------------------------------------------------------


def test_full_width_punctuation_in_free_text_is_kept_and_codes_are_still_normalised(deployment):
    row = example_row("buildings", address="金积镇，金积村（三组）１２号", floors_above="３",
                      building_id="ＪＺ－１", owner=" 金积镇中心小学；教务处\u200b ")  # fmt: skip
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", [row]))
    assert deployment.intake("buildings")["buildings"].valid == 1
    assert deployment.query("SELECT address, floors_above, building_id, owner FROM stg_buildings") == [
        ("金积镇，金积村（三组）１２号", 3, "JZ-1", "金积镇中心小学；教务处")
    ]


# --- 6. historic structures ----------------------------------------------------------------


def test_a_bridge_built_before_1900_is_accepted_with_a_hint(deployment):
    rows = [example_row("bridges", bridge_id="Q1", year_built="1875"),
            example_row("bridges", bridge_id="Q2", year_built="0998")]  # fmt: skip
    deployment.drop("bridges", "q.csv", csv_bytes("bridges", rows))
    intake_with_receipts(deployment, "bridges")
    assert deployment.query("SELECT bridge_id, year_built FROM stg_bridges") == [("Q1", 1875)]
    assert deployment.query("SELECT record_id FROM quarantine") == [("Q2",)]
    hints = receipt(deployment, "bridges/ZJJ/2023-1/q.csv", "ZJJ")["提示"]
    assert [(h[0], h[1], h[2], h[3]) for h in hints] == [(2, "Q1", "建成年份", "1875")]
    assert hints[0][4].startswith("建成年份早于1900年：已接收")


def test_a_huge_csv_is_streamed_in_batches_with_the_same_result(tmp_path, monkeypatch):
    """A CSV over readers.STREAM_BYTES is never whole in memory: read record by record, loaded batch by batch.
    Here every file streams, in batches of 2 rows, and gives what the whole-file reader gives: rows, blank
    rows, quoted line breaks, values right of the header and over-long cells (in a template column or not)."""
    from pipeline.intake import readers
    from tests.conftest import Deployment

    records = [example_row("buildings", building_id=f"B{i}") for i in range(7)]
    records[1]["address"] = "金积镇\r\n三组"
    records[3]["address"] = "长" * 3000
    rows = rows_of("buildings", *records)
    rows[0] = [*rows[0], "备注"]
    rows[5] = [*rows[5], "外" * 3000]  # an over-long cell outside the template's columns
    rows.insert(4, [""] * len(HEADERS))  # a blank row
    text = "利通区房屋建筑调查表\r\n" + csv_text(rows)
    text += csv_text(
        [[*rows_of("buildings", example_row("buildings", building_id="B9"))[1], "", "错位"]]
    )  # one value too many
    outcomes = []
    for name, stream in (("whole", False), ("streamed", True)):
        d = Deployment(tmp_path / name)
        d.drop("buildings", "a.csv", text.encode("gb18030"))
        with monkeypatch.context() as m:
            if stream:
                m.setattr(readers, "STREAM_BYTES", 0)
                m.setattr(readers, "BATCH_ROWS", 2)
            result = d.intake("buildings")["buildings"]
        outcomes.append((
            (result.valid, result.quarantined),
            d.query("SELECT rows_read, blank_rows, encoding FROM intake_files"),
            d.query("SELECT row_no, building_id, address FROM stg_buildings ORDER BY row_no"),
            d.query("SELECT row_no, reasons_zh FROM quarantine ORDER BY row_no"),
            d.query("SELECT row_no, column_key, problem_zh FROM intake_row_problems ORDER BY ALL"),
        ))  # fmt: skip
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][0] == (6, 2) and outcomes[1][1] == [(8, 1, "gb18030")]
    assert outcomes[1][2][1] == (4, "B1", "金积镇\r\n三组")
