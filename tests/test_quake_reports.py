"""Issue 28 §3: the reports a duty officer sends. Every PDF carries every line of its text (pages numbered), every
character drawn has an outline (Ⅹ度 keeps its numeral), every time written or shown is Beijing time whatever the
server's clock (this module runs with TZ=UTC), the duty officer's form reads the time as typed in Chinese and
confirms at once, the CLI counts 灾情反馈 rows the ledger returned, and each unit's 排查清单 and where to send
灾情反馈 are on the portal's earthquake page.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import time
from pathlib import Path

import duckdb
import pypdf
import pytest
from portal_support import login, make_site, serving, text_of, token

from pipeline.ledger import quake_damage
from pipeline.platform import clock, store
from pipeline.publish.style import FontMissingError
from pipeline.quake import followup
from pipeline.quake.event import EventError, _time, declare, event_from, find_event
from pipeline.quake.exposure import quake_db_path
from pipeline.quake.respond import checklists_and_map, event_dir, first_report
from pipeline.registries.events import closed_at
from tests.conftest import Deployment, csv_bytes, example_row, run_all
from tests.test_ledger import building

EVENT = {"time": "2025-06-30 14:23:05", "lon": 106.19, "lat": 37.93, "depth_km": 10, "magnitude": 6.5}
USES = {"S": ("学校", "JYJ"), "Y": ("医院", "WJJ"), "L": ("养老机构", "MZJ")}
OTHER_TOWNS = {"T102": "高闸镇", "T103": "扁担沟镇", "T104": "上桥镇", "T105": "古城镇", "T106": "金星镇", "T107": "胜利镇",
               "T200": "东塔寺乡", "T201": "板桥乡", "T202": "马莲渠乡", "T203": "郭家桥乡", "T401": "宁夏吴忠国家农业科技园区"}  # fmt: skip
N_EACH = 14  # more key objects than the 首报 lists per group (12): a 首报 longer than one page


@pytest.fixture(scope="module")
def utc_server():
    """The server's clock on UTC (Beijing is 8 hours ahead): every stamp must still be Beijing time."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def report_row(object_id: str, **overrides) -> dict:
    row = example_row("quake_feedback", object_id=object_id, object_kind="", hazard_no="", inspected="是",
                      damage_state="轻微破坏", deaths="0", injuries="0", usable="是", measures="已疏散人员",
                      report_date="2025-07-01", person="马建国")  # fmt: skip
    row.update(overrides)
    return row


@pytest.fixture(scope="module")
def response(utc_server, tmp_path_factory) -> tuple[Deployment, str]:
    """Schools, hospitals and elderly homes (14 each) and eight appraised-C houses of 金积镇 around an M6.5 under
    金积镇: the 首报; two 灾情反馈 batches (houses 严重破坏, raising their hazards to 重大; schools 毁坏, one row
    for another town's object returned by the ledger): two 续报; the event closed: the 终报 (section 五 lists 12+
    hazards)."""
    d = Deployment(tmp_path_factory.mktemp("quake_reports"))
    rows = []
    for prefix, (use, unit) in USES.items():
        rows += [building(f"{prefix}-{i:04d}", town_code="640302100", use=use, responsible_unit=unit,
                          lon=f"{106.15 + i * 0.005:.3f}", lat="37.94") for i in range(N_EACH)]  # fmt: skip
    rows += [building(f"H-{i:04d}", town_code="640302100", appraisal_grade="C", responsible_unit="T100",
                      lon=f"{106.16 + i * 0.005:.3f}", lat="37.92") for i in range(8)]  # fmt: skip
    rows.append(building("H-T101", town_code="640302101", town_name="金银滩镇", responsible_unit="T101",
                         lon="106.25", lat="37.98"))  # fmt: skip
    for i, (code, name) in enumerate(OTHER_TOWNS.items()):  # one house in each other town: the 终报 lists them all
        rows.append(building(f"H-{code}", town_code=f"640302{code[1:]}", town_name=name, responsible_unit=code,
                             lon=f"{106.17 + i * 0.005:.3f}", lat="37.96"))  # fmt: skip
    d.drop("buildings", "b.csv", csv_bytes("buildings", rows), unit="ZJJ")
    assert run_all(d, publish=False).success
    event = event_from(EVENT)
    declare(event, d.data_raw)
    first_report(event, d.db, d.db, d.output)
    checklists_and_map(event, d.output)  # the annex PDF follows with the 排查清单
    houses = [report_row(f"H-{i:04d}", damage_state="严重破坏", usable="否") for i in range(8)]
    houses.append(report_row("H-T101", damage_state="严重破坏", usable="否"))  # not T100's: returned by the ledger
    d.drop("quake_feedback", "t100.csv", csv_bytes("quake_feedback", houses), unit="T100", rnd=event.event_id)
    schools = [report_row(f"S-{i:04d}", damage_state="毁坏", usable="否") for i in range(N_EACH)]
    d.drop("quake_feedback", "jyj.csv", csv_bytes("quake_feedback", schools), unit="JYJ", rnd=event.event_id)
    clock.use_data_raw(d.data_raw)
    with store.connect(d.db) as con:
        quake_damage.validate_quake_feedback(con, d.data_raw)
        assert len(quake_damage.apply_pending(con, d.data_raw)) == 2
    clock.use_data_raw(None)
    published = d.output / "published" / "litong.duckdb"
    assert len(followup.follow_up(event, published, d.db, d.output)) == 4
    followup.close(event, d.data_raw, published, d.db, d.output, "值班人员张三")
    return d, event.event_id


# --- 1. every line of the text in the PDF ----------------------------------------------------------------------

HEADING = re.compile(r"^\s*([一二三四五六七八九十]+)、")
PAGE_FOOTER = re.compile(r"^第(\d+)页/共(\d+)页")


def sections(lines: list[str]) -> dict[str, str]:
    """Heading numeral (一, 二 …; "" before the first) → the section's text without blanks (wrapping and
    indentation differ between the PDF and the .txt, the characters do not)."""
    out: dict[str, str] = {}
    key = ""
    for line in lines:
        if not line.strip():
            continue
        if m := HEADING.match(line):
            key = m.group(1)
        out[key] = out.get(key, "") + re.sub(r"\s+", "", line)
    return out


def pdf_lines(path: Path, title: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The text lines of every page (the continuation header and the page footer left out) and each page's
    (第n页, 共m页)."""
    reader = pypdf.PdfReader(io.BytesIO(path.read_bytes()))
    lines, numbers = [], []
    for page in reader.pages:
        for line in page.extract_text().splitlines():
            if m := PAGE_FOOTER.match(line.strip()):
                numbers.append((int(m.group(1)), int(m.group(2))))
            elif line.strip() not in (title, f"{title}（续）"):
                lines.append(line)
    return lines, numbers + [(0, 0)] * (len(reader.pages) - len(numbers))  # (0, 0): a page without its number


def assert_pdf_carries_text(folder: Path, stem: str) -> tuple[str, int]:
    text = (folder / f"{stem}.txt").read_text(encoding="utf-8")
    title, *body = text.splitlines()
    lines, numbers = pdf_lines(folder / f"{stem}.pdf", title)
    want, got = sections(body), sections(lines)
    assert list(got) == list(want)
    for key in want:
        assert got[key] == want[key], f"{stem} section {key or 'head'}"
    assert numbers == [(n, len(numbers)) for n in range(1, len(numbers) + 1)]
    return text, len(numbers)


def test_the_first_report_and_its_annex_pdfs_carry_every_section_of_their_text(response):
    d, eid = response
    folder = event_dir(d.output, find_event(d.data_raw, eid))
    text, pages = assert_pdf_carries_text(folder, "首报")
    assert pages == 1 and "五、" in text  # the 首报 itself fits one page (issue 28 §3)
    annex, pages = assert_pdf_carries_text(folder, "首报附件")
    assert len(annex.splitlines()) > 62 and pages >= 2 and "五、估计方法" in annex  # the long lists: nothing cut


def test_a_follow_up_pdf_carries_the_raised_to_major_line(response):
    d, eid = response
    folder = event_dir(d.output, find_event(d.data_raw, eid))
    texts = [assert_pdf_carries_text(folder, f"续报{k}")[0] for k in (1, 2)]
    assert any("升为重大" in t for t in texts)


def test_the_final_report_pdf_carries_its_section_five(response):
    d, eid = response
    text, _ = assert_pdf_carries_text(event_dir(d.output, find_event(d.data_raw, eid)), "终报")
    assert "五、本次地震登记的震损隐患" in text and len(text.splitlines()) > 62  # longer than main's one page


def test_a_long_text_takes_as_many_numbered_pages_as_it_needs_and_loses_nothing(tmp_path):
    from pipeline.quake.reports import PAGE_LINES, display_width, wrap_display, write_report

    long_line = "  " + "很长的一行：" + "金积镇人民政府负责的学校" * 30 + "（完）"
    body = [f"{'一二三'[i // 70]}、第{i}行 Ⅹ度" if i % 70 == 0 else f"  第{i}行，利通区教育局，Ⅹ度" for i in range(200)]
    text = "\n".join(["利通区地震灾情首报（测试）", "", *body[:100], long_line, *body[100:]]) + "\n"
    txt, pdf = write_report(text, tmp_path, "长")
    lines, numbers = pdf_lines(pdf, "利通区地震灾情首报（测试）")
    wrapped = sum(len(wrap_display(x, 108)) for x in text.splitlines()[1:])
    assert len(numbers) == -(-wrapped // PAGE_LINES) >= 4
    assert numbers == [(n, len(numbers)) for n in range(1, len(numbers) + 1)]
    assert sections(lines) == sections(text.splitlines()[1:])
    assert "（完）" in "".join(lines) and "第199行" in lines[-1]
    assert display_width("Ⅹ度ab") == 6 and all(display_width(p) <= 40 for p in wrap_display(long_line, 40))


# --- 2. every glyph drawn has an outline -------------------------------------------------------------------------


def glyph_vertices(family: str, ch: str) -> int:
    """Vertices of the outline matplotlib draws for `ch` in `family` (its own glyph loader, fallback included)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    from pipeline.publish.style import check_cjk_font

    check_cjk_font()
    vertices, _ = text_to_path.get_text_path(FontProperties(family=[family, "DejaVu Sans"]), ch)
    return len(vertices)


WQY = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


@pytest.mark.skipif(not WQY.exists(), reason="WenQuanYi not installed")
def test_the_check_flags_roman_ten_in_wenquanyi_and_passes_it_in_noto():
    from matplotlib.figure import Figure

    from pipeline.publish.glyphs import check_glyphs, missing_outlines, outline_problem

    assert glyph_vertices("WenQuanYi Micro Hei", "Ⅹ") == 0  # in the character map, no outline
    assert glyph_vertices("Noto Sans CJK SC", "Ⅹ") > 0
    assert missing_outlines("Ⅹ度区外缘", ["WenQuanYi Micro Hei"]) == {"Ⅹ": "WenQuanYi Micro Hei"}
    assert missing_outlines("Ⅹ度区外缘 Ⅵ", ["Noto Sans CJK SC"]) == {}
    fig = Figure()
    fig.text(0.5, 0.5, "Ⅹ度区外缘", fontfamily="WenQuanYi Micro Hei")
    assert "U+2169" in outline_problem(fig)[0]  # a chart reports it through its all_glyphs_drawn check
    with pytest.raises(FontMissingError, match="U\\+2169"):
        check_glyphs("Ⅹ度", ["WenQuanYi Micro Hei"])


def test_the_product_draws_with_a_font_whose_roman_ten_has_an_outline():
    import matplotlib

    from pipeline.publish.style import check_cjk_font, use_cjk_style

    use_cjk_style()
    assert check_cjk_font() == "Noto Sans CJK SC"
    assert glyph_vertices(matplotlib.rcParams["font.sans-serif"][0], "Ⅹ") > 0


@pytest.mark.skipif(not WQY.exists(), reason="WenQuanYi not installed")
def test_a_pdf_is_not_written_with_an_empty_glyph(tmp_path, monkeypatch):
    """Only WenQuanYi at hand: the PDF with 「Ⅹ度」 fails loudly (the .txt is there), never drawn without its numeral."""
    from pipeline.publish import style
    from pipeline.quake.reports import write_report

    monkeypatch.setattr(style, "CJK_FONTS", ["WenQuanYi Micro Hei"])
    with pytest.raises(FontMissingError, match="fonts-noto-cjk"):
        write_report("标题\n\n一、估计最高烈度Ⅹ度\n", tmp_path, "首报")
    assert (tmp_path / "首报.txt").is_file() and not (tmp_path / "首报.pdf").exists()
    monkeypatch.undo()
    style.use_cjk_style()
    write_report("标题\n\n一、估计最高烈度Ⅹ度\n", tmp_path, "首报")
    lines, _ = pdf_lines(tmp_path / "首报.pdf", "标题")
    assert "一、估计最高烈度Ⅹ度" in lines


def test_a_name_the_font_cannot_draw_is_marked_not_dropped_and_does_not_stop_the_report(tmp_path):
    """An emoji in an object's name: the PDF is written, the character drawn as 〓 and the page says so."""
    from pipeline.quake.reports import write_report

    write_report("标题\n\n一、重点对象：\n  金积镇🏫小学（Ⅷ度）\n", tmp_path, "首报")
    lines, _ = pdf_lines(tmp_path / "首报.pdf", "标题")
    assert "金积镇〓小学（Ⅷ度）" in "".join(lines)
    assert any("以“〓”代替字体无法显示的字符（U+1F3EB），原文见首报.txt" in x.replace(" ", "") for x in lines)


def test_the_map_legend_draws_roman_ten(tmp_path, monkeypatch):
    from matplotlib.font_manager import FontProperties
    from matplotlib.text import Text
    from matplotlib.textpath import text_to_path

    from pipeline.quake import reports

    drawn = []
    real = reports.settle_glyphs
    monkeypatch.setattr(reports, "settle_glyphs", lambda fig: (drawn.append(fig), real(fig))[1])
    con = duckdb.connect()
    con.execute("CREATE TABLE quake_exposure (event_id VARCHAR, lon DOUBLE, lat DOUBLE, degree INTEGER, "
                "town_code VARCHAR)")  # fmt: skip
    event = event_from({**EVENT, "magnitude": 8.0})
    reports.write_map(con, event, tmp_path)
    (fig,) = drawn
    legend = [t for t in fig.findobj(Text) if t.get_text().startswith("Ⅹ度")]
    assert legend, [t.get_text() for t in fig.findobj(Text)]
    prop = FontProperties(family=legend[0].get_fontproperties().get_family())
    vertices, _ = text_to_path.get_text_path(prop, "Ⅹ")
    assert len(vertices) > 0


# --- 3. Beijing time whatever the server's clock -----------------------------------------------------------------


def beijing_now_here() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=8)


def test_the_closing_text_and_the_closure_record_agree_in_beijing_time(response):
    d, eid = response
    assert time.localtime().tm_gmtoff == 0  # the server is on UTC here
    closed = closed_at(d.data_raw, eid)
    assert abs(closed - beijing_now_here()) < dt.timedelta(minutes=10)
    text = (event_dir(d.output, find_event(d.data_raw, eid)) / "终报.txt").read_text(encoding="utf-8")
    assert f"本事件已由值班人员张三于{closed:%Y-%m-%d %H:%M}结束" in text
    lines, _ = pdf_lines(event_dir(d.output, find_event(d.data_raw, eid)) / "终报.pdf", text.splitlines()[0])
    reader = pypdf.PdfReader(event_dir(d.output, find_event(d.data_raw, eid)) / "终报.pdf")
    made = re.search(r"生成时间 (\d{4}-\d\d-\d\d \d\d:\d\d)（北京时间）", reader.pages[0].extract_text())
    assert made and abs(dt.datetime.fromisoformat(made.group(1)) - closed) < dt.timedelta(minutes=10)


def test_the_records_of_the_response_are_beijing_time(response):
    d, eid = response
    now = beijing_now_here()
    with duckdb.connect(str(quake_db_path(d.output)), read_only=True) as con:
        computed = con.execute("SELECT computed_at FROM quake_events WHERE event_id = ?", [eid]).fetchone()[0]
        issued = [t for (t,) in con.execute("SELECT written_at FROM quake_reports_issued").fetchall()]
    assert len(issued) == 3  # 续报1, 续报2, 终报
    applied = [t for (t,) in d.query("SELECT applied_at FROM quake_feedback_applied")]
    recorded = [t for (t,) in d.query("SELECT recorded_at FROM hazard_events")]  # the ledger's history
    scored = [t for (t,) in d.query("SELECT scored_at FROM scoring_runs")]
    assert len(applied) == 2 and recorded and scored
    for stamp in [computed, *issued, *applied, *recorded, *scored]:
        assert abs(stamp - now) < dt.timedelta(minutes=10), stamp


NAIVE_CLOCK = re.compile(r"datetime\.now\(\s*\)|date\.today\(\)|time\.strftime\(|time\.localtime\(|utcnow\(|"
                         r"fromtimestamp\([^,()]*\)|time\.ctime\(")  # fmt: skip


def test_no_naive_clock_remains_in_the_pipeline():
    root = Path(__file__).resolve().parents[1] / "pipeline"
    found = [f"{p.relative_to(root)}:{n}: {line.strip()}" for p in sorted(root.rglob("*.py"))
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if NAIVE_CLOCK.search(line)]  # fmt: skip
    assert found == []


def test_beijing_now_is_eight_hours_ahead_of_utc(utc_server):
    assert abs(clock.beijing_now() - beijing_now_here()) < dt.timedelta(seconds=5)
    assert clock.beijing_time(0) == dt.datetime(1970, 1, 1, 8, 0)


# --- 4. the duty officer's form ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed, read",
    [
        ("2025年06月30日14时23分", dt.datetime(2025, 6, 30, 14, 23)),
        ("2025年6月30日 14时23分05秒", dt.datetime(2025, 6, 30, 14, 23, 5)),
        ("2025-06-30 14:23", dt.datetime(2025, 6, 30, 14, 23)),
        ("2025/6/30 14:23:05", dt.datetime(2025, 6, 30, 14, 23, 5)),
        ("２０２５年６月３０日１４时２３分", dt.datetime(2025, 6, 30, 14, 23)),
        ("2025-06-30T06:23:05+00:00", dt.datetime(2025, 6, 30, 14, 23, 5)),
    ],
)
def test_the_origin_time_is_read_as_typed(typed, read):
    assert _time(typed) == read


@pytest.mark.parametrize("typed", ["876年12月07日10时45分", "0876-12-07 10:45", "2025年13月07日10时45分", "昨天"])
def test_an_unreadable_origin_time_is_refused_in_chinese(typed):
    with pytest.raises(EventError, match="发震时刻"):
        _time(typed)


@pytest.fixture(scope="module")
def quake_site(tmp_path_factory):
    d = Deployment(tmp_path_factory.mktemp("quake_portal"))
    (d.output / "quake").mkdir(parents=True)
    with serving(make_site(d.root)) as s:
        yield s


FORM = {"lon": "106.19", "lat": "37.93", "depth": "10", "mag": "5.8"}


def test_the_form_takes_the_time_in_chinese_and_confirms_at_once(quake_site):
    site = quake_site
    duty = login(site, "duty")
    r = duty.post(site.url + "/quake", data={"csrf": token(duty, site, "/quake"), "time": "2025年06月30日14时23分",
                                             **FORM})  # fmt: skip
    event_id = "20250630T142300-M5.8"
    assert r.status_code == 200 and f"declared={event_id}" in r.url
    page = text_of(r.text)
    assert f"已登记地震事件 {event_id}" in page and "北京时间2025年06月30日14时23分" in page
    assert "首报生成中" in page and 'id="event-' + event_id in r.text  # listed before its reports exist
    folder = site.settings.output / "quake" / event_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "首报.pdf").write_bytes(b"%PDF-1.4 test")
    r = duty.get(site.url + f"/quake?declared={event_id}")
    assert f'href="/quake/{event_id}/首报.pdf"' in r.text and 'id="declared-first-report"' in r.text


def test_a_refused_declaration_leaves_no_file_behind(quake_site):
    site = quake_site
    duty = login(site, "duty")
    before = sorted(p.relative_to(site.root) for p in site.root.rglob("*") if p.is_file() and "portal" not in p.parts)
    for typed in ("876年12月07日10时45分", "0876-12-07 10:45"):
        r = duty.post(site.url + "/quake", data={"csrf": token(duty, site, "/quake"), "time": typed, **FORM})
        assert r.status_code == 400 and "发震时刻" in text_of(r.text)
    after = sorted(p.relative_to(site.root) for p in site.root.rglob("*") if p.is_file() and "portal" not in p.parts)
    assert after == before


# --- 5. the CLI's summary ------------------------------------------------------------------------------------------


def test_the_cli_summary_counts_quake_feedback_rows_the_ledger_returned(response, capsys):
    from pipeline.cli import _print_intake

    d, eid = response
    returned = d.query("SELECT count(*) FROM quake_feedback_rows WHERE outcome = '退回'")[0][0]
    taken = d.query("SELECT count(*) FROM quake_feedback_rows WHERE outcome = '已受理'")[0][0]
    assert returned >= 1
    with store.connect(d.db) as con:
        _print_intake(con)
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.split()[:1] == ["地震灾情反馈"]]
    assert line.split()[-2:] == [str(taken), str(returned)]


# --- 6, 7. the 排查清单 and where to send 灾情反馈, on the earthquake page --------------------------------------


def test_the_earthquake_page_links_each_units_checklist_and_says_where_to_report(quake_site):
    from pipeline.registries.events import events_dir

    site = quake_site
    event_id = "20250630T142305-M5.5"
    folder = events_dir(site.data_raw)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{event_id}.yaml").write_text(
        "time: 2025-06-30 14:23:05\nlon: 106.2\nlat: 37.98\ndepth_km: 10\nmagnitude: 5.5\n", encoding="utf-8"
    )
    lists = site.settings.output / "quake" / event_id / "排查清单"
    lists.mkdir(parents=True, exist_ok=True)
    for unit in ("T100", "JYJ"):
        (lists / f"排查清单_{unit}.xlsx").write_bytes(b"PK\x03\x04 test workbook")
    (lists.parent / "首报.txt").write_text("首报", encoding="utf-8")
    clerk = login(site, "clerk100")
    page = clerk.get(site.url + "/quake").text
    assert f'href="/quake/{event_id}/checklist?unit=T100"' in page and "金积镇人民政府</a>" in page
    assert "unit=JYJ" not in page  # another unit's list: not the clerk's to open
    assert "“上传”页选择类别“地震灾情反馈”" in text_of(page) and 'href="/upload"' in page
    r = clerk.get(site.url + f"/quake/{event_id}/checklist?unit=T100")
    assert r.status_code == 200 and r.content.startswith(b"PK")
    duty = login(site, "duty")
    page = duty.get(site.url + "/quake").text
    assert f'href="/quake/{event_id}/checklist?unit=JYJ"' in page and "利通区教育局</a>" in page
    assert "data_raw" not in page and "quake_feedback/" not in page


def test_the_earthquake_store_is_in_the_data_dictionary_both_ways(response):
    """Every table and column of output/quake/quake.duckdb after a whole response (首报, two 续报, 终报) is in
    docs/data-dictionary.md's section on the earthquake store, with its type, and nothing more is."""
    from tests.test_docs import quake_tables, store_tables

    d, _ = response
    store, said = store_tables(quake_db_path(d.output)), quake_tables()
    assert store and said == store, {"not documented": {t: c for t, c in store.items() if said.get(t) != c},
                                     "documented": {t: c for t, c in said.items() if store.get(t) != c}}  # fmt: skip
