"""Issue 25 §8: what leaders and clerks read, read right. The top-10 chart ranks by the points before the cap and
shows the main reasons in full; the hazchem chart colours its bars by grade and its footer overlaps nothing;
the sample's points are not piled up on the district's edges; the briefing's note follows its table, a unit's
count stays on its line, the footer names no path; a clerk's ledger sheet starts with what to act on, the
open hazards first. Every test reads values: the written files, the figure's artists, the PDF's text."""

from __future__ import annotations

import collections
import datetime as dt

import openpyxl
import pytest

from pipeline.ledger.exports import LEDGER_COLUMNS, export_ledger
from pipeline.platform import store
from tests.conftest import saved_figures
from tests.test_ledger import A_DAMAGE, A_FALL, B_D, round_one

AS_OF = dt.date(2023, 9, 1)
CLERK_FIRST = ["隐患编号", "资产名称", "隐患等级", "整改状态", "整改时限", "逾期天数"]


# --- the ledger workbooks a clerk works through ---------------------------------------------------------


def test_a_clerks_sheet_starts_with_what_to_act_on_and_lists_open_hazards_first(deployment, tmp_path):
    round_one(deployment)  # JZ-A-B09, JZ-A-B11, JZ-B-B01 in 金积镇, in the ledger's order
    deployment.query("UPDATE hazards SET status = '已销号', accept_date = ? WHERE hazard_no = ?",
                     [dt.date(2023, 8, 1), A_DAMAGE])  # fmt: skip  # the first in the ledger's order, closed
    with store.connect(deployment.db) as con:
        export_ledger(con, AS_OF, tmp_path)
    for path in (tmp_path / "隐患台账.xlsx", tmp_path / "乡镇" / "隐患台账_金积镇.xlsx",
                 tmp_path / "责任单位" / "隐患台账_T100.xlsx"):  # fmt: skip
        ws = openpyxl.load_workbook(path)["房屋建筑"]
        header = [c.value for c in ws[1]]
        assert header[:6] == CLERK_FIRST, path.name
        assert len(header) == len(LEDGER_COLUMNS) and header.index("整改状态") == 3
        rows = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
        assert [r[0] for r in rows] == [A_FALL, B_D, A_DAMAGE], path.name  # open first, the closed one last
        assert [r[3] for r in rows] == ["待整改", "待整改", "已销号"]
        assert rows[0][5] == (AS_OF - dt.date(2023, 6, 11)).days  # overdue days of the falling hazard
        assert isinstance(rows[0][4], dt.datetime)  # the deadline a date cell
        notes = {r[0].value: r[1].value for r in openpyxl.load_workbook(path)["说明"].iter_rows(min_row=2)}
        assert "已销号的列在其后" in notes["排列"]
    # the CSV is the machine-readable full export: its columns keep the ledger's order
    header = (tmp_path / "隐患台账.csv").read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    assert header[:4] == ["隐患编号", "资产类别", "资产编码", "资产名称"] and header.index("整改状态") == 25


# --- the map of the bundled sample -------------------------------------------------------------------------


def test_the_bundled_samples_points_are_not_piled_up_on_the_districts_edges(sample):
    """The sample was generated with clipped coordinates: thousands of assets on the lines lon = 105.93 and
    lat = 38.07. Regenerated (only the coordinates moved), no asset lies on the bounds or stacks on a line."""
    from sample.generate import LAT_RANGE, LON_RANGE

    deployment, _ = sample
    rows = deployment.query("SELECT lon, lat FROM scores WHERE lon IS NOT NULL AND kind <> 'pipelines'")
    assert len(rows) > 19_000
    lons, lats = [r[0] for r in rows], [r[1] for r in rows]
    assert LON_RANGE[0] < min(lons) and max(lons) < LON_RANGE[1]
    assert LAT_RANGE[0] < min(lats) and max(lats) < LAT_RANGE[1]
    stacked = max(max(collections.Counter(lons).values()), max(collections.Counter(lats).values()))
    assert stacked <= 5, stacked


# --- the charts ----------------------------------------------------------------------------------------------


def _drawn_figure(chart_name: str, con, as_of: dt.date, out, monkeypatch):
    """The figure render_chart saves as the chart's PNG (caught at savefig), drawn again on an Agg canvas so that
    its texts have their extents; and the rendered chart."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from pipeline.publish.charts import CHARTS_BY_NAME
    from pipeline.publish.inputs import PublishInputs
    from pipeline.publish.render import render_chart

    saved = saved_figures(monkeypatch)
    rendered = render_chart(CHARTS_BY_NAME[chart_name], PublishInputs(con, as_of), out)
    fig = saved[-1]
    FigureCanvasAgg(fig).draw()
    return fig, rendered


def _texts(fig):
    """The texts drawn on the figure: titles, labels, the shown axes' tick labels, table cells."""
    from matplotlib.text import Text

    hidden = {id(t) for ax in fig.axes if not ax.axison for t in ax.get_xticklabels() + ax.get_yticklabels()}
    cells = [c.get_text() for ax in fig.axes for table in ax.tables for c in table.get_celld().values()]
    texts = [t for t in fig.findobj(Text) if id(t) not in hidden] + cells
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def test_the_top_ten_rank_by_the_points_before_the_cap_and_show_their_main_reasons_in_full(sample, tmp_path,
                                                                                           monkeypatch):  # fmt: skip
    import pandas as pd

    deployment, _ = sample
    with store.connect(deployment.db) as con:
        fig, rendered = _drawn_figure("top_assets", con, dt.date(2025, 6, 30), tmp_path, monkeypatch)
        expected = con.execute("SELECT asset_id, raw_points, n_hazards, top_reasons, score FROM scores "
                               "ORDER BY raw_points DESC, n_hazards DESC, asset_id LIMIT 10").fetchall()  # fmt: skip
    assert all(score == 100 for *_, score in expected)  # the sample's top ten are all capped …
    table = pd.read_csv(rendered.csv, encoding="utf-8-sig", dtype={"排名": int})
    points = table["封顶前累计分"].tolist()  # … the points before the cap tell them apart
    assert points == [e[1] for e in expected] and len(set(points)) > 3 and points == sorted(points, reverse=True)
    assert table["资产编码"].tolist() == [e[0] for e in expected]
    assert "level" not in table.columns  # no code in a file for people
    keys = list(zip(points, table["隐患数"], strict=True))
    ranks = table["排名"].tolist()
    for i in range(10):  # a rank is shared by equal points and hazards only, and counts the ones above
        assert ranks[i] == 1 + sum(k > keys[i] for k in keys)
    assert ranks[0] == 1 and ranks != [1] * 10
    for row, (*_, reasons, _) in zip(table.itertuples(), expected, strict=True):
        parts = reasons.split("；")
        assert row.主要原因 == "；".join(parts[:3]) and "…" not in row.主要原因  # in full
        assert (row.其余原因 if isinstance(row.其余原因, str) else "") == "；".join(parts[3:])
    # the chart's table shows the points and every main reason in full, not a column of 100.0
    shown = "\n".join(t.get_text() for t in _texts(fig))
    assert "100.0" not in shown and "…" not in shown
    for reasons in table["主要原因"]:
        for reason in reasons.split("；"):
            assert reason in shown.replace("\n", ""), reason
    assert f"{points[0]:g}" in shown


def test_hazchem_bars_are_coloured_by_grade(sample, tmp_path, monkeypatch):
    from matplotlib.colors import to_hex

    deployment, _ = sample
    with store.connect(deployment.db) as con:
        fig, rendered = _drawn_figure("hazchem_grades", con, dt.date(2025, 6, 30), tmp_path, monkeypatch)
    ax = fig.axes[0]
    computed = next(c for c in ax.containers if c.get_label() == "按GB 18218计算")
    grades = rendered.table["等级"].tolist()
    colours = {g: to_hex(bar.get_facecolor()) for g, bar in zip(grades, computed.patches, strict=True)}
    assert colours["一级"] == "#d62728" and colours["四级"] == "#2f6fd0"
    assert colours["非重大危险源"] != colours["一级"] and len(set(colours.values())) >= 5  # one colour a grade
    assert rendered.table.set_index("等级").loc["非重大危险源", "按GB 18218计算"] > 0  # drawn, and not red


@pytest.mark.parametrize("name", ["hazchem_grades", "asset_map", "top_assets", "levels_by_town"])
def test_the_as_of_footer_overlaps_no_text_of_the_chart(sample, tmp_path, monkeypatch, name):
    """The 「样例数据，截至…」 footer sat over 未申报, the hazchem chart's last tick label."""
    from pipeline.platform.clock import as_of_label

    deployment, _ = sample
    as_of = dt.date(2025, 6, 30)
    with store.connect(deployment.db) as con:
        fig, _ = _drawn_figure(name, con, as_of, tmp_path, monkeypatch)
    renderer = fig.canvas.get_renderer()
    (footer,) = [t for t in _texts(fig) if t.get_text() == as_of_label(as_of)]
    box = footer.get_window_extent(renderer)
    crossed = [t.get_text() for t in _texts(fig) if t is not footer and t.get_window_extent(renderer).overlaps(box)]
    assert crossed == []


# --- the briefing ----------------------------------------------------------------------------------------------


def _pdf_pieces(path) -> list[tuple[float, str]]:
    """(height on the page, text) of every piece of text in the one-page PDF."""
    from pypdf import PdfReader

    pieces = []

    def visit(text, cm, tm, font, size):
        if not text.strip():
            return
        y = tm[5] * cm[3] + cm[5]
        # one string drawn in runs of two fonts (Noto's Latin and CJK faces: 「JZ-」「640302102」…) is one piece
        if pieces and abs(pieces[-1][0] - y) < 0.5 and not text[0].isspace() and not pieces[-1][2]:
            pieces[-1] = (y, pieces[-1][1] + text.rstrip(), text[-1].isspace())
        else:
            pieces.append((y, text.strip(), text[-1].isspace()))

    PdfReader(path).pages[0].extract_text(visitor_text=visit)
    return [(y, text) for y, text, _ in pieces]


def _overdue_major(deployment):
    """The overdue 重大隐患 as of the sample's date, the longest overdue first (as the briefing lists them)."""
    from pipeline.ledger.exports import ledger_rows
    from pipeline.platform.clock import sample_as_of

    with store.connect(deployment.db) as con:
        rows = ledger_rows(con, sample_as_of())
    overdue = rows[(rows["hazard_grade"] == "重大") & rows["overdue_days"].notna()]
    return overdue.sort_values(["overdue_days", "hazard_no"], ascending=[False, True])


def _briefing_text(deployment) -> str:
    from pypdf import PdfReader

    return PdfReader(deployment.output / "briefing" / "简报.pdf").pages[0].extract_text()


def test_the_briefings_note_on_the_overdue_table_is_printed_under_it(sample):
    deployment, _ = sample
    listed = _overdue_major(deployment)["hazard_no"].head(8).tolist()
    pieces = _pdf_pieces(deployment.output / "briefing" / "简报.pdf")
    table_rows = [y for y, text in pieces if text in listed]
    (note,) = [y for y, text in pieces if "逾期最久的" in text]
    assert len(table_rows) == 8 and note < min(table_rows)  # 「逾期最久的 8 项」 under the 8 rows
    header = next(y for y, text in pieces if text.startswith("隐患编号"))
    assert header > max(table_rows)


def test_the_briefings_per_unit_counts_stay_on_the_line_of_their_unit(sample):
    import re

    deployment, _ = sample
    overdue = _overdue_major(deployment)
    by_unit = overdue.groupby("unit_name").size()
    assert len(by_unit) > 10
    text = _briefing_text(deployment)
    for unit, n in by_unit.items():
        assert re.search(rf"{re.escape(unit)}[ \xa0]*{n:,}", text), (unit, n)  # no line break between them


def test_the_briefings_footer_names_no_file_path(sample):
    import re

    deployment, _ = sample
    (footer,) = [line for line in _briefing_text(deployment).splitlines() if line.startswith("数据：")]
    assert not re.search(r"[/\\]|\.xlsx|\.csv|output", footer), footer
    assert "隐患台账" in footer and "排查平台" in footer  # where a leader finds the full list


def test_per_unit_lines_break_between_units_and_sum_the_rest_past_their_room():
    import pandas as pd

    from pipeline.publish.briefing import MAX_UNIT_LINES, PER_UNIT_EMS, per_unit_lines

    by_unit = pd.Series({f"利通区第{i}号责任单位人民政府": 200 - i for i in range(60)})
    lines = per_unit_lines(by_unit)
    assert len(lines) == MAX_UNIT_LINES
    shown = [item for line in lines[:-1] for item in line.rstrip("；").split("；")]
    assert all(item.endswith(" 项") and " " in item for item in shown)  # each item whole: name, count, 项
    assert all(sum(1 if ord(c) > 0x2E80 else 0.55 for c in line) <= PER_UNIT_EMS + 1 for line in lines)
    counted = sum(int(item.split(" ")[-2]) for item in shown)
    rest = len(by_unit) - len(shown)
    assert lines[-1] == f"其余 {rest} 个单位共 {int(by_unit.sum()) - counted:,} 项"
    assert per_unit_lines(pd.Series({"金积镇人民政府": 3})) == ["金积镇人民政府 3 项"]
