"""Issue 27 §3: the leaders' page on a phone (Chromium, 390×844): the figures follow the chosen town, drawn in
the page from the publication, nothing wider than the screen; towns worst first, each opening its overdue 重大."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from portal_support import PASSWORDS, login, published_rows, serving_copy, text_of

from pipeline.platform import clock
from pipeline.registries.templates import towns

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


@pytest.fixture(scope="module")
def site(sample, tmp_path_factory):
    with serving_copy(sample[0].root, tmp_path_factory.mktemp("portal_leaders")) as s:
        yield s


def _today(site) -> dt.date:
    clock.use_data_raw(site.data_raw)
    try:
        return clock.district_today()
    finally:
        clock.use_data_raw(None)


def _expected(site, town: str) -> dict[str, dict[str, int]]:
    """The figures straight from the snapshot for `town` (the ledger's status, the objects' levels, the months)."""
    today = _today(site)
    this = today.replace(day=1)
    last = (this - dt.timedelta(days=1)).replace(day=1)
    nxt = (this + dt.timedelta(days=32)).replace(day=1)
    levels = dict(published_rows(site, "SELECT level, count(*) FROM scores WHERE town_code = ? GROUP BY 1", [town]))
    status = dict(published_rows(site, "SELECT status, count(*) FROM hazards WHERE town_code = ? AND status <> '已撤销' "
                                       "GROUP BY 1", [town]))  # fmt: skip
    months = published_rows(site, """SELECT count(*) FILTER (WHERE found_date >= $1 AND found_date < $2),
                                            count(*) FILTER (WHERE found_date >= $2 AND found_date < $3),
                                            count(*) FILTER (WHERE status = '已销号' AND accept_date >= $1 AND accept_date < $2),
                                            count(*) FILTER (WHERE status = '已销号' AND accept_date >= $2 AND accept_date < $3)
                           FROM hazards WHERE town_code = $4 AND status <> '已撤销'""", [last, this, nxt, town])[0]  # fmt: skip
    return {
        "levels": {
            zh: levels.get(k, 0)
            for k, zh in (
                ("red", "红色（重大）"),
                ("orange", "橙色（较大）"),
                ("yellow", "黄色（一般）"),
                ("blue", "蓝色（低）"),
            )
        },  # fmt: skip
        "progress": status,
        "months": dict(zip(("上月新发现", "本月新发现", "上月销号", "本月销号"), months, strict=True)),
    }


def _bars(page, key: str) -> dict[str, int]:
    return {g.get_attribute("data-label"): int(g.get_attribute("data-value"))
            for g in page.locator(f"#figure-{key} g.bar").all()}  # fmt: skip


def _overflowing(page) -> list[str]:
    """Elements whose box passes the screen's right edge (outside the tables' own scrolling boxes)."""
    return page.evaluate("""() => {
        const w = document.documentElement.clientWidth, out = [];
        if (document.documentElement.scrollWidth > w) out.push('page scrolls sideways: ' + document.documentElement.scrollWidth);
        for (const e of document.querySelectorAll('body *')) {
            if (e.closest('.scroll') && !e.classList.contains('scroll')) continue;
            const r = e.getBoundingClientRect();
            if (r.width && r.right > w + 1) out.push(e.tagName + (e.id ? '#' + e.id : '') + ' ' + Math.round(r.right));
        }
        return out;
    }""")  # fmt: skip


def test_on_a_phone_a_town_changes_the_figures_to_that_towns_and_nothing_overflows(browser, site):
    worst = published_rows(site, """SELECT town_code FROM hazards WHERE status NOT IN ('已销号', '已撤销') AND town_code IS NOT NULL
                                    GROUP BY 1 ORDER BY count(*) FILTER (WHERE hazard_grade = '重大') DESC LIMIT 2""")  # fmt: skip
    town, other = worst[0][0], worst[1][0]
    page = browser.new_context(**PHONE).new_page()
    page.set_default_timeout(30_000)
    page.goto(site.url + "/login")
    page.fill("#username", "analyst")
    page.fill("#password", PASSWORDS["analyst"])
    page.click("#login")
    page.wait_for_load_state()
    page.goto(site.url + "/leaders")
    district = _bars(page, "progress")
    assert _overflowing(page) == []
    page.select_option("select[name=town]", town)
    page.click("form.filters button")
    page.wait_for_url(re.compile(rf"/leaders\?town={town}"))
    expected = _expected(site, town)
    shown = _bars(page, "progress")
    assert shown != district  # the chart changed with the town …
    assert {k: v for k, v in shown.items() if v} == {k: v for k, v in expected["progress"].items() if v}  # … to its own
    assert _bars(page, "levels") == expected["levels"]
    assert _bars(page, "months") == expected["months"]
    found = published_rows(site, "SELECT count(*) FROM hazards WHERE town_code = ? AND status <> '已撤销'", [town])[0][
        0
    ]
    assert page.inner_text("#headline").split()[0] == f"{found:,}"
    assert towns()[town] in page.inner_text("#figures")  # the captions name the town
    assert page.locator("img[src^='/charts/']").count() == 0  # no district-wide picture under a town's name
    assert _overflowing(page) == []
    box = page.locator("#figure-progress").bounding_box()
    assert 300 <= box["width"] <= 390  # drawn at the phone's width, not squeezed from 1760 px
    # tap to enlarge: the same figure on its own page
    page.click("#figures a[href^='/leaders/figure/progress']")
    page.wait_for_selector("#figure-table")
    assert _bars(page, "progress") == shown
    assert _overflowing(page) == []
    page.goto(f"{site.url}/leaders?town={other}")
    assert _bars(page, "levels") == _expected(site, other)["levels"]


def test_towns_are_worst_first_and_each_opens_its_overdue_major_hazards(site):
    s = login(site, "analyst")
    html = s.get(site.url + "/leaders").text
    linked = re.findall(r'class="town-overdue-major" href="/hazards\?town=(\d+)&amp;grade=重大&amp;overdue=1"', html)
    open_major = dict(published_rows(site, """
        SELECT town_code, count(*) FILTER (WHERE status <> '已销号' AND hazard_grade = '重大')
        FROM hazards WHERE status <> '已撤销' AND town_code IS NOT NULL GROUP BY 1"""))  # fmt: skip
    assert len(linked) == len(open_major) and set(linked) == set(open_major)
    majors = [open_major[c] for c in linked]
    assert majors == sorted(majors, reverse=True) and majors[0] > 0
    town = linked[0]
    # change since last month, per town: found and closed this month, last month's beside them
    today = _today(site)
    this = today.replace(day=1)
    last = (this - dt.timedelta(days=1)).replace(day=1)
    found_last, closed_last = published_rows(site, """SELECT count(*) FILTER (WHERE found_date >= $1 AND found_date < $2),
        count(*) FILTER (WHERE status = '已销号' AND accept_date >= $1 AND accept_date < $2)
        FROM hazards WHERE town_code = $3 AND status <> '已撤销'""", [last, this, town])[0]  # fmt: skip
    row = re.search(rf'href="/hazards\?town={town}&amp;grade=.*?</tr>', html, re.S).group(0)
    assert f"（上月{found_last:,}）" in text_of(row) and f"（上月{closed_last:,}）" in text_of(row)
    html = s.get(f"{site.url}/hazards?town={town}&grade=重大&overdue=1").text
    assert f'<option value="{town}" selected>' in html  # the list says which town it is filtered to
    listed = text_of(html)
    expected = published_rows(site, "SELECT hazard_no FROM hazards WHERE town_code = ? AND hazard_grade = '重大' "
                                    "AND status <> '已撤销' ORDER BY hazard_no", [town])  # fmt: skip
    other = published_rows(
        site, "SELECT min(hazard_no) FROM hazards WHERE town_code <> ? AND hazard_grade = '重大'", [town]
    )[0][0]
    assert other not in listed  # only that town's
    assert any(h in listed for (h,) in expected)


def test_the_leaders_page_holds_each_towns_shelter_capacity_against_its_people(site):
    """Issue 29 §3: per town, usable shelter capacity against the people to shelter, the towns short first, with
    the population's source; a town's choice shows that town only."""
    s = login(site, "analyst")
    html = s.get(site.url + "/leaders").text
    table = re.search(r'<table id="shelter-capacity">.*?</table>', html, re.S).group(0)
    rows = [text_of(r).strip() for r in re.findall(r"<tr(?: class=\"short\")?>(.*?)</tr>", table, re.S)[1:]]
    expected = published_rows(site, "SELECT town_name, people_to_shelter, usable_capacity, capacity_gap FROM v_shelter_capacity "
                                    "ORDER BY capacity_gap > 0 DESC, capacity_ratio, town_code")  # fmt: skip
    assert len(rows) == len(towns()) == len(expected)
    for row, (name, need, capacity, gap) in zip(rows, expected, strict=True):
        assert row.startswith(name) and f"{need:,}" in row and f"{capacity:,}" in row
        assert (f"{gap:,}" in row) if gap > 0 else "—" in row
    short = [e for e in expected if e[3] > 0]
    assert 0 < len(short) < len(expected) and table.count('class="short"') == len(short)
    assert "常住人口来源：U：未找到利通区第七次全国人口普查" in text_of(html)
    town = published_rows(
        site, "SELECT town_code FROM v_shelter_capacity WHERE capacity_gap > 0 ORDER BY town_code LIMIT 1"
    )[0][0]
    one = re.search(r'<table id="shelter-capacity">.*?</table>', s.get(f"{site.url}/leaders?town={town}").text, re.S)
    assert one.group(0).count("<tr") == 2  # the header and that town
