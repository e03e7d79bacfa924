"""Issue 25, the intake's part: files as clerks really make them (a two-row header with 序号 merged down, a spacer
column, a 合计 row and a signature block under the data), hostile workbooks that expand to gigabytes, and one bad
character in a cell. Each test drops real bytes and runs the real intake."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest

import pipeline
from pipeline.registries.templates import load_template
from tests.conftest import example_row
from tests.test_intake_robust import file_problems, intake_with_receipts, receipt

BUILDINGS = load_template("buildings")
HEADERS = [f.header for f in BUILDINGS.fields]
SPACER_AFTER = HEADERS.index("详细地址")  # a blank spacer column right of it


def _record_cells(row: dict[str, str]) -> list[str]:
    cells = [row[k] for k in BUILDINGS.keys]
    return cells[: SPACER_AFTER + 1] + [""] + cells[SPACER_AFTER + 1 :]


def _spread(cells: dict[str, str]) -> list[str | None]:
    """A row of the form with `cells` (header → value) in their columns, the others empty."""
    return (
        [cells.get(h) for h in HEADERS[: SPACER_AFTER + 1]]
        + [None]
        + [cells.get(h) for h in HEADERS[SPACER_AFTER + 1 :]]
    )


def clerk_workbook() -> bytes:
    """The form as a town's clerk makes it: a title row; a two-row header (序号 merged down over both rows, group
    headers 基本信息/结构信息 merged above the column names); a blank spacer column; two records; a 合计 row; a blank
    row; a signature block."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "填报表"
    width = len(HEADERS) + 2
    ws.append(["利通区房屋建筑抗震风险调查表"] + [None] * (width - 1))
    ws.append(["序号", "基本信息"] + [None] * (SPACER_AFTER + 1) + ["结构信息"] + [None] * (width - SPACER_AFTER - 4))
    ws.append([None, *HEADERS[: SPACER_AFTER + 1], None, *HEADERS[SPACER_AFTER + 1 :]])
    ws.merge_cells("A1:" + openpyxl.utils.get_column_letter(width) + "1")
    ws.merge_cells("A2:A3")
    ws.merge_cells(start_row=2, start_column=2, end_row=2, end_column=SPACER_AFTER + 3)
    for n, building_id in enumerate(("JZ-1", "JZ-2"), start=1):
        ws.append([n, *_record_cells(example_row("buildings", building_id=building_id, occupants="30"))])
    ws.append(["合计", *_spread({"常住(使用)人数": "60", "地上层数": "6"})])
    ws.append([None] * width)
    ws.append(
        [None, *_spread({"房屋编码": "填表人：张三", "乡镇代码": "审核人：李四", "详细地址": "联系电话：13900000000"})]
    )
    ws.append([None, *_spread({"房屋编码": "填报日期：2023年8月1日"})])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


intake = intake_with_receipts


# --- 2. a clerk's header, total and signature rows ------------------------------------------------


def test_a_two_row_header_with_a_merged_seq_no_and_a_spacer_column_is_read(deployment):
    deployment.drop("buildings", "金积镇.xlsx", clerk_workbook())
    result = intake(deployment, "buildings")["buildings"]
    assert file_problems(deployment) == {}
    assert (result.valid, result.quarantined) == (2, 0)
    assert deployment.query("SELECT building_id, row_no, occupants FROM stg_buildings ORDER BY 1") == [
        ("JZ-1", 4, 30), ("JZ-2", 5, 30)]  # fmt: skip
    r = receipt(deployment, "buildings/ZJJ/2023-1/金积镇.xlsx", "ZJJ")
    assert r["表头所在行"] == [3] and r["数据行数"] == [2] and r["退回行数"] == [0] and r["退回明细"] == []
    notes = r["说明"]
    assert f"表头（第3行）中A列、{openpyxl.utils.get_column_letter(SPACER_AFTER + 3)}列没有列名" in notes[0]
    assert notes[1] == "表格末尾的合计行（第6行）和签字栏（第8、9行）不是调查记录，已跳过（共3行，不计入数据行数）"
    assert r["空行(已忽略)"] == [1]  # row 7: every input row is data, blank or skipped with a note


def test_a_real_record_at_the_bottom_is_never_taken_for_a_total(deployment):
    """The last row names a building 合计 (and its 序号 says 合计): it has its id, so it is a record."""
    wb = openpyxl.load_workbook(io.BytesIO(clerk_workbook()))
    ws = wb["填报表"]
    ws.delete_rows(6, 4)
    ws.append(["合计", *_record_cells(example_row("buildings", building_id="JZ-3", name="合计"))])
    buf = io.BytesIO()
    wb.save(buf)
    deployment.drop("buildings", "a.xlsx", buf.getvalue())
    assert intake(deployment, "buildings")["buildings"].valid == 3
    assert deployment.query("SELECT name FROM stg_buildings WHERE building_id = 'JZ-3'") == [("合计",)]


def test_total_and_signature_rows_of_a_csv_are_skipped_with_a_note(deployment):
    rows = [HEADERS, *([example_row("buildings", building_id=b)[k] for k in BUILDINGS.keys] for b in ("A1", "A2"))]
    rows += [["总 计", "", "", "", "", "", "", "", "", "", "", "12"], [""] * 3, ["填表人：王五", "", "审核人："]]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    deployment.drop("buildings", "a.csv", buf.getvalue().encode("utf-8-sig"))
    result = intake(deployment, "buildings")["buildings"]
    assert (result.valid, result.quarantined) == (2, 0)
    r = receipt(deployment, "buildings/ZJJ/2023-1/a.csv", "ZJJ")
    assert r["说明"] == ["表格末尾的合计行（第4行）和签字栏（第6行）不是调查记录，已跳过（共2行，不计入数据行数）"]


def test_missing_columns_point_to_the_mapping_and_lists_keep_headers_whole(deployment):
    headers = ["建筑物编号" if h == "房屋编码" else h for h in HEADERS]
    rows = [headers, [example_row("buildings")[k] for k in BUILDINGS.keys]]
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    deployment.drop("buildings", "a.csv", buf.getvalue().encode(), unit="WJJ")
    intake(deployment, "buildings")
    problem = file_problems(deployment)["buildings/WJJ/2023-1/a.csv"]
    assert problem.startswith("缺少必填列：“房屋编码”。请使用模板表头；")
    assert "列映射.csv（两列：本单位列名,模板列名），把本单位的列名对应到模板列名" in problem
    r = receipt(deployment, "buildings/WJJ/2023-1/a.csv", "WJJ")
    (found,) = r["文件中找到的列"]
    assert "“是否有明显裂缝、变形、倾斜”，“倾斜率(‰)”" in found and found.startswith("“建筑物编号”，“建筑名称”")

    (deployment.data_raw / "buildings" / "WJJ" / "列映射.csv").write_text("本单位列名,模板列名\n建筑物编号,房屋编码\n")
    assert intake(deployment, "buildings")["buildings"].valid == 1
    r = receipt(deployment, "buildings/WJJ/2023-1/a.csv", "WJJ")
    assert r["按列映射.csv改名的列"] == ["“建筑物编号”→“房屋编码”"]


# --- 6. one bad character never stops a step ------------------------------------------------------


def materialize_intake(deployment, kind: str = "buildings"):
    import dagster as dg

    from pipeline.intake.assets import intake_assets

    selection = [f"raw_{kind}", f"stg_{kind}"]
    return dg.materialize(intake_assets, selection=selection, resources={"store": deployment.resource()},
                          raise_on_error=False)  # fmt: skip


def receipt_workbook(deployment, name: str) -> openpyxl.Workbook:
    return openpyxl.load_workbook(deployment.output / "receipts" / "ZJJ" / "buildings" / "2023-1" / f"{name}_回执.xlsx")


def test_a_nul_and_a_vertical_tab_in_a_csv_never_stop_the_step(deployment):
    from tests.conftest import csv_bytes

    rows = [example_row("buildings", building_id="N1", floors_above="3\x0b"),  # a vertical tab pasted from Word
            example_row("buildings", building_id="N2", floors_above="2\x00"),  # a NUL
            example_row("buildings", building_id="N3", name="金积\x00小学")]  # fmt: skip
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", rows))
    deployment.drop("buildings", "b.csv", csv_bytes("buildings", [example_row("buildings", building_id="G1")]))
    result = materialize_intake(deployment)
    assert result.success
    assert deployment.query("SELECT building_id FROM stg_buildings ORDER BY 1") == [("G1",), ("N3",)]
    problems = list(receipt_workbook(deployment, "a.csv")["问题明细"].iter_rows(min_row=2, values_only=True))
    assert [(p[0], p[1], p[3]) for p in problems] == [
        (2, "N1", "“地上层数”为“3\ufffd”"),
        (3, "N2", "“地上层数”为“2\ufffd”"),
    ]
    summary = {r[0]: r[1] for r in receipt_workbook(deployment, "b.csv")["回执"].iter_rows(values_only=True)}
    assert summary["接收行数"] == 1


def test_a_receipt_that_cannot_be_written_never_fails_the_step(deployment):
    from tests.conftest import csv_bytes

    deployment.drop("buildings", "a.csv", csv_bytes("buildings", [example_row("buildings", building_id="A1")]))
    deployment.drop("buildings", "b.csv", csv_bytes("buildings", [example_row("buildings", building_id="B1")]))
    blocked = deployment.output / "receipts" / "ZJJ" / "buildings" / "2023-1" / "a.csv_回执.xlsx"
    (blocked / "in the way").mkdir(parents=True)  # a folder where the receipt goes: it cannot be written
    result = materialize_intake(deployment)
    assert result.success
    assert deployment.query("SELECT building_id FROM stg_buildings ORDER BY 1") == [("A1",), ("B1",)]
    assert receipt_workbook(deployment, "b.csv")["回执"]["A1"].value == "项目"
    (materialization,) = [m for m in result.asset_materializations_for_node("stg_buildings")]
    assert list(materialization.metadata["receipts_not_written"].value) == ["buildings/ZJJ/2023-1/a.csv"]
    (blocked / "in the way").rmdir()
    blocked.rmdir()
    b_written = (blocked.parent / "b.csv_回执.xlsx").stat().st_mtime_ns
    assert materialize_intake(deployment).success  # nothing changed: the missing receipt is written now
    assert receipt_workbook(deployment, "a.csv")["回执"]["A1"].value == "项目"
    assert (blocked.parent / "b.csv_回执.xlsx").stat().st_mtime_ns == b_written


def test_a_streamed_workbook_shows_characters_a_workbook_cannot_hold(tmp_path):
    from pipeline.formats.xlsx_stream import python_rows, streamed_workbook

    rows, _ = python_rows([["a\x00b", "\x0b=1+1", "ok"]])
    with streamed_workbook(tmp_path / "w.xlsx", "t") as wb:
        wb.add_sheet("s", ["名称", "值", "x"], rows, 1)
    values = list(openpyxl.load_workbook(tmp_path / "w.xlsx")["s"].iter_rows(min_row=2, values_only=True))
    assert values == [("a\ufffdb", "'\ufffd=1+1", "ok")]


def test_excel_error_values_are_refused_in_text_columns(deployment):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADERS)
    for building_id, name, owner in (("E1", "#N/A", "某单位"), ("E2", "小学", "#REF!"), ("E3", "#N/A的说明", "某单位")):
        ws.append(
            [example_row("buildings", building_id=building_id, name=name, owner=owner)[k] for k in BUILDINGS.keys]
        )
    assert ws["B2"].data_type == "e"  # written as Excel writes an error cell
    buf = io.BytesIO()
    wb.save(buf)
    deployment.drop("buildings", "a.xlsx", buf.getvalue())
    result = intake(deployment, "buildings")["buildings"]
    assert (result.valid, result.quarantined) == (1, 2)
    refused = {r[1]: r[3] for r in receipt(deployment, "buildings/ZJJ/2023-1/a.xlsx", "ZJJ")["退回明细"]}
    assert refused["E1"].startswith("第2行：“建筑名称”为“#N/A”，是Excel的错误值（公式出错）")
    assert "“产权人/使用单位”为“#REF!”，是Excel的错误值" in refused["E2"]


# --- 4. bounded work on hostile workbooks ---------------------------------------------------------

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_NS = "http://schemas.openxmlformats.org/package/2006/relationships"


def hostile_xlsx(path: Path, cell_chunks: int, chunk: bytes = b"A" * (1 << 20)) -> Path:
    """A small workbook whose sheet holds the header 房屋编码 and one inline string of `cell_chunks` × `chunk`
    (the same 1 MB repeated: a few MB on disk that expand a thousand times)."""
    ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.'
                   'openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/'
                   'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/'
                   f'xml"/><Override PartName="/xl/workbook.xml" ContentType="{ct}.sheet.main+xml"/><Override '
                   f'PartName="/xl/worksheets/sheet1.xml" ContentType="{ct}.worksheet+xml"/></Types>')  # fmt: skip
        z.writestr("_rels/.rels", f'<Relationships xmlns="{PKG_NS}"><Relationship Id="rId1" '
                   f'Type="{REL_NS}/officeDocument" Target="xl/workbook.xml"/></Relationships>')  # fmt: skip
        z.writestr("xl/workbook.xml", f'<workbook xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><sheets><sheet name="填报表" '
                   'sheetId="1" r:id="rId1"/></sheets></workbook>')  # fmt: skip
        z.writestr("xl/_rels/workbook.xml.rels", f'<Relationships xmlns="{PKG_NS}"><Relationship Id="rId1" '
                   f'Type="{REL_NS}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>')  # fmt: skip
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as f:
            f.write(f'<worksheet xmlns="{MAIN_NS}"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>房屋编码</t>'
                    '</is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>'.encode())  # fmt: skip
            for _ in range(cell_chunks):
                f.write(chunk)
            f.write(b"</t></is></c></row></sheetData></worksheet>")
    return path


READ_BOUNDED = """
import json, resource, sys
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from pathlib import Path
from pipeline.intake.readers import UnreadableFile, head_rows, open_xlsx, read_sheet
try:
    with open_xlsx(Path(sys.argv[1])) as wb:
        head_rows(wb, "填报表")
        read_sheet(wb, "填报表", 0)
    outcome = "read"
except UnreadableFile as e:
    outcome = str(e)
except MemoryError:
    outcome = "MemoryError"
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
print(json.dumps({"outcome": outcome, "peak_mb": int(status["VmHWM"].split()[0]) // 1024}))  # since exec"""


def test_a_workbook_that_expands_to_gigabytes_is_refused_within_a_memory_bound(tmp_path):
    """300 MB of one cell in a 1.3 MB file, read under a 1 GB address-space limit (the reader's own imports take
    about a third of it): the read refuses the file instead of dying, and stays small."""
    path = hostile_xlsx(tmp_path / "炸弹.xlsx", 300)
    assert path.stat().st_size < 4 << 20
    root = str(Path(pipeline.__file__).parent.parent)
    done = subprocess.run([sys.executable, "-c", READ_BOUNDED, str(path), str(1 << 30)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": root}, cwd=root)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outcome"].startswith("文件展开后过大：“炸弹.xlsx”"), result
    assert result["peak_mb"] < 300


def test_a_hostile_workbook_is_refused_and_the_other_files_go_on(deployment, tmp_path):
    deployment.drop("buildings", "a.xlsx", hostile_xlsx(tmp_path / "a.xlsx", 64).read_bytes())
    text = base64.b64encode(os.urandom(6 << 20))  # 8 MB of one cell that does not compress: past any Excel cell
    deployment.drop("buildings", "b.xlsx", hostile_xlsx(tmp_path / "b.xlsx", 1, text).read_bytes())
    deployment.drop("buildings", "c.xlsx", clerk_workbook())
    assert intake(deployment, "buildings")["buildings"].valid == 2
    problems = file_problems(deployment)
    assert problems["buildings/ZJJ/2023-1/a.xlsx"].startswith("文件展开后过大：“a.xlsx”其中一部分压缩了")
    assert problems["buildings/ZJJ/2023-1/b.xlsx"].startswith("文件展开后过大：“b.xlsx”其中有一个单元格的内容超过")
    assert receipt(deployment, "buildings/ZJJ/2023-1/a.xlsx", "ZJJ")["文件问题"] == [
        problems["buildings/ZJJ/2023-1/a.xlsx"]
    ]


def test_the_expansion_bound_is_a_setting(deployment, monkeypatch):
    deployment.drop("buildings", "c.xlsx", clerk_workbook())
    monkeypatch.setenv("LITONG_XLSX_MAX_EXPANDED_MB", "0.01")
    intake(deployment, "buildings")
    assert file_problems(deployment)["buildings/ZJJ/2023-1/c.xlsx"].startswith("文件展开后过大：“c.xlsx”解压后共")


def test_a_problem_over_two_columns_lists_them_quoted(deployment):
    from tests.conftest import csv_bytes

    row = example_row("buildings", building_id="Y1", year_built="2024", survey_date="2023-05-01")
    deployment.drop("buildings", "a.csv", csv_bytes("buildings", [row]))
    intake(deployment, "buildings")
    problems = receipt(deployment, "buildings/ZJJ/2023-1/a.csv", "ZJJ")["问题明细"]
    assert [p[2] for p in problems if "建成年份晚于调查日期" in p[4]] == ["“建成年份”，“调查日期”"]


def test_pictures_in_a_workbook_count_for_nothing(deployment, tmp_path):
    """A picture is never read by the reader: a 40 MB one-colour bitmap (it compresses thousands of times) in
    a clerk's workbook refuses nothing."""
    path = tmp_path / "c.xlsx"
    path.write_bytes(clerk_workbook())
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/media/image1.bmp", b"BM" + b"\xff" * (40 << 20))
    deployment.drop("buildings", "c.xlsx", path.read_bytes())
    assert intake(deployment, "buildings")["buildings"].valid == 2
    assert file_problems(deployment) == {}


@pytest.mark.parametrize("grouped", [4, 30])  # few grouped columns (the upper row names more) or many
@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_a_header_over_two_rows_names_each_column_from_either_row(deployment, grouped, suffix):
    """The columns without a group are merged down over both header rows (their names in the upper row); the
    `grouped` columns from 乡镇代码 on are named in the lower row under their group 位置信息."""
    first = HEADERS.index("乡镇代码")
    upper = ["序号", *HEADERS[:first], "位置信息", *[""] * (grouped - 1), *HEADERS[first + grouped :]]
    lower = ["", *[""] * first, *HEADERS[first : first + grouped], *[""] * (len(HEADERS) - first - grouped)]
    rows = [["利通区房屋建筑抗震风险调查表"], upper, lower]
    rows += [
        [str(n), *(example_row("buildings", building_id=b)[k] for k in BUILDINGS.keys)]
        for n, b in ((1, "H1"), (2, "H2"))
    ]
    if suffix == ".xlsx":
        wb = openpyxl.Workbook()
        for row in rows:
            wb.active.append([c or None for c in row])
        buf = io.BytesIO()
        wb.save(buf)
        data = buf.getvalue()
    else:
        buf = io.StringIO()
        csv.writer(buf).writerows(rows)
        data = buf.getvalue().encode("utf-8-sig")
    deployment.drop("buildings", "a" + suffix, data)
    result = intake(deployment, "buildings")["buildings"]
    assert file_problems(deployment) == {}
    assert (result.valid, result.quarantined) == (2, 0)
    r = receipt(deployment, f"buildings/ZJJ/2023-1/a{suffix}", "ZJJ")
    assert r["表头所在行"] == [3] and r["数据行数"] == [2] and r["未识别的列(已忽略)"] == ["“序号”"]
