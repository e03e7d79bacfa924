"""The web portal in a real browser: Debian's headless Chromium driven by Playwright (never a downloaded
browser), against a real server over a copy of the published sample district.

The story a town clerk and its supervisor live: log in, upload a survey with bad rows, read the refusals,
confirm, see the run's receipt; the supervisor accepts a hazard; and what nobody may do: look at or act on
another unit's hazards by editing the URL or the form, guess a password more than five times, or make the
page run a formula typed into a cell.
"""

from __future__ import annotations

import io
from pathlib import Path

import dagster as dg
import pytest
from conftest import csv_bytes, example_row
from portal_support import PASSWORDS, published_rows, serving_copy

from pipeline.platform.resources import LitongStore, SparkResource

FORMULA = '=HYPERLINK("http://example.invalid","点我")'


@pytest.fixture(scope="module")
def site(sample, tmp_path_factory):
    with serving_copy(sample[0].root, tmp_path_factory.mktemp("portal_browser")) as s:
        yield s


def _page(browser, site, username: str, password: str | None = None, **context):
    page = browser.new_context(**context).new_page()
    page.set_default_timeout(30_000)
    page.goto(site.url + "/")
    assert "/login" in page.url
    page.fill("#username", username)
    page.fill("#password", password or PASSWORDS[username])
    page.click("#login")
    page.wait_for_load_state()
    return page


def _run_pipeline(site) -> None:
    """What the upload sensor starts: the pipeline over the deployment (the one writer of the database)."""
    from pipeline.wiring.definitions import all_assets

    store = LitongStore(database=str(site.settings.database), data_raw=str(site.data_raw),
                        output=str(site.settings.output))  # fmt: skip
    assert dg.materialize(all_assets, resources={"store": store, "spark": SparkResource()}).success


def test_clerk_uploads_with_refusals_supervisor_accepts_and_the_run_gives_the_receipt(browser, site, tmp_path):
    from openpyxl import load_workbook

    rows = [example_row("buildings", building_id=f"640302100-7{i:05d}", town_code="640302100") for i in range(6)]
    rows[2]["year_built"] = "3025"
    rows[4]["year_built"] = FORMULA
    survey = tmp_path / "金积镇补充调查.csv"
    survey.write_bytes(csv_bytes("buildings", rows, encoding="gbk", newline="\r\n"))  # as Excel saves "CSV" here

    clerk = _page(browser, site, "clerk100")
    clerk.goto(site.url + "/upload")
    clerk.select_option("#target", "buildings/2023-1")
    clerk.set_input_files("#file", str(survey))
    clerk.click("#preview")
    clerk.wait_for_selector("#refused-buildings")
    assert clerk.inner_text("#accepted-buildings") == "接收 4 行"
    assert clerk.inner_text("#refused-buildings") == "退回 2 行"
    refusals = clerk.inner_text("table.refusals")
    assert "3025" in refusals and "建成年份" in refusals
    assert FORMULA in refusals  # a formula typed into a cell is shown as the text it is …
    assert clerk.locator("table.refusals a").count() == 0  # … never as a link or anything live
    assert not (site.data_raw / "buildings" / "T100" / "2023-1" / survey.name).exists()
    clerk.click("#confirm")
    clerk.wait_for_selector("#status")
    assert "等待处理" in clerk.inner_text("#status")
    assert (site.data_raw / "buildings" / "T100" / "2023-1" / survey.name).read_bytes() == survey.read_bytes()

    hazard_no = published_rows(site, "SELECT min(hazard_no) FROM hazards WHERE responsible_unit = 'T100' AND sector_supervisor = 'ZJJ' AND "
                                     "status = '已整改待验收' AND hazard_grade = '一般'")[0][0]  # fmt: skip
    sup = _page(browser, site, "sup")
    sup.goto(f"{site.url}/hazards/{hazard_no}")
    assert sup.inner_text("#hazard-status") == "已整改待验收"
    sup.select_option("#decision", "accept")
    sup.click("#decide")
    sup.wait_for_selector("#feedback-summary")
    assert sup.inner_text("#feedback-summary") == "1 条将更新，0 条将退回"
    sup.click("#confirm")
    sup.wait_for_selector("#status")

    _run_pipeline(site)

    clerk.reload()
    clerk.wait_for_selector("#receipt-accepted-buildings")
    assert clerk.inner_text("#status") == "已处理"
    assert clerk.inner_text("#receipt-accepted-buildings") == "接收 4 行"
    assert clerk.inner_text("#receipt-refused-buildings") == "退回 2 行"
    with clerk.expect_download() as download:
        clerk.click("#receipt-buildings")
    assert download.value.suggested_filename == f"{survey.name}_回执.xlsx"
    receipt = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()))
    summary = dict(receipt["回执"].iter_rows(min_row=2, values_only=True))
    assert summary["上传账号"] == "clerk100" and summary["接收行数"] == 4 and summary["退回行数"] == 2
    sup.goto(f"{site.url}/hazards/{hazard_no}")
    assert sup.inner_text("#hazard-status") == "已销号"
    last = sup.locator("#history tr").last.inner_text()
    assert "利通区住房城乡建设和交通局" in last  # the house's sector department, by name
    assert f"网页办理：验收通过 {hazard_no}" in last


def test_a_clerk_cannot_reach_another_units_hazard_by_url_or_form(browser, site):
    other = published_rows(site, "SELECT min(hazard_no) FROM hazards WHERE responsible_unit = 'T101' "
                                 "AND status = '已整改待验收'")[0][0]  # fmt: skip
    clerk = _page(browser, site, "clerk100")
    response = clerk.goto(f"{site.url}/hazards/{other}")
    assert response.status == 403 and "无权访问" in clerk.inner_text("h1") and other not in clerk.content()
    clerk.goto(site.url + "/hazards")
    csrf = clerk.get_attribute("input[name=csrf]", "value")
    before = len(site.uploads())
    response = clerk.request.post(f"{site.url}/hazards/{other}/decision", form={"csrf": csrf, "decision": "accept"})
    assert response.status == 403
    assert len(site.uploads()) == before  # nothing staged, nothing landed
    assert published_rows(site, "SELECT status FROM hazards WHERE hazard_no = ?", [other])[0][0] == "已整改待验收"


def test_five_wrong_passwords_lock_the_account(browser, site):
    page = browser.new_context().new_page()
    for i in range(5):
        page.goto(site.url + "/login")
        page.fill("#username", "duty")
        page.fill("#password", f"not-the-password-{i}")
        page.click("#login")
        page.wait_for_selector("#error")
    assert "锁定" in page.inner_text("#error")
    page.goto(site.url + "/login")
    page.fill("#username", "duty")
    page.fill("#password", PASSWORDS["duty"])
    page.click("#login")
    page.wait_for_selector("#error")
    assert "锁定" in page.inner_text("#error") and "/login" in page.url


def test_leaders_page_reads_on_a_phone(browser, site):
    page = _page(browser, site, "analyst", viewport={"width": 390, "height": 844}, device_scale_factor=2,
                 is_mobile=True, has_touch=True)  # fmt: skip
    page.goto(site.url + "/leaders")
    found = published_rows(site, "SELECT count(*) FROM hazards WHERE status <> '已撤销'")[0][0]
    assert f"{found:,}" in page.inner_text("#headline")
    assert page.locator(".charts img").count() == 7
    assert all(
        page.evaluate("i => i.naturalWidth", img.element_handle()) > 0 for img in page.locator(".charts img").all()
    )
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # nothing wider than the phone
    pdf = page.request.get(site.url + "/briefing.pdf")
    assert pdf.status == 200 and pdf.body()[:5] == b"%PDF-"


def _photo(path: Path, fmt: str, colour: tuple[int, int, int], exif: bool = False) -> Path:
    from PIL import Image

    im, extra = Image.new("RGB", (80, 60), colour), {}
    if exif:
        tags = Image.Exif()
        tags[0x010F] = "LitongCam"
        tags[0x8825] = {1: "N", 2: (38.0, 1.0, 0.0), 3: "E", 4: (106.0, 12.0, 0.0)}
        extra["exif"] = tags
    im.save(path, fmt, **extra)
    return path


def _confirm_preview(page, expected: str) -> None:
    page.wait_for_selector("#feedback-summary")
    assert page.inner_text("#feedback-summary") == expected
    page.click("#confirm")
    page.wait_for_selector("#status")


def test_clerk_reports_with_photos_supervisor_accepts_in_a_batch_and_rejects_one(browser, site, tmp_path):
    """Issue 27 §1 in a browser: the clerk reports 开始整改 of a 重大 hazard with its 五落实 and two photos (a JPEG
    with EXIF/GPS: stored without them), the run applies it, the clerk reports 整改完成 with a photo; the
    supervisor sees the 五落实 and the photos beside the decision, accepts two hazards in one batch and rejects
    the clerk's with a reason; the clerk's home page shows the rejection, linking to the hazard."""
    from PIL import Image

    no = published_rows(site, "SELECT min(hazard_no) FROM hazards WHERE responsible_unit = 'T100' AND status = '待整改' "
                              "AND hazard_grade = '重大' AND sector_supervisor = 'ZJJ'")[0][0]  # fmt: skip
    assert no
    jpeg = _photo(tmp_path / "IMG_0001.JPG", "JPEG", (200, 40, 40), exif=True)
    png = _photo(tmp_path / "现场.jpg", "PNG", (40, 160, 40))  # a PNG under a .jpg name: taken by its bytes
    clerk = _page(browser, site, "clerk100")
    clerk.goto(f"{site.url}/hazards/{no}")
    form = clerk.locator("#report-start")
    form.locator("input[name=measures]").fill("委托加固设计，停止使用")
    form.locator("input[name=person]").fill("马建国")
    form.locator("input[name=funds_wan]").fill("12.5")
    form.locator("input[name=plan_finish]").fill("2025-12-31")
    form.locator("input[name=plan_no]").fill("YA-2025-07")
    form.locator("input[name=before]").set_input_files([str(jpeg), str(png)])
    clerk.click("#report-start-submit")
    _confirm_preview(clerk, "1 条将更新，0 条将退回")
    stored = sorted((site.data_raw / "evidence").rglob("*.*"))
    assert sorted(p.suffix for p in stored) == [".jpg", ".png"]
    for path in stored:
        with Image.open(path) as im:
            assert not im.getexif() and b"LitongCam" not in path.read_bytes()

    _run_pipeline(site)

    clerk.goto(f"{site.url}/hazards/{no}")
    assert clerk.inner_text("#hazard-status") == "整改中"
    assert clerk.locator("#evidence img.photo").count() == 2
    assert all(clerk.evaluate("i => i.complete && i.naturalWidth > 0", img.element_handle())
               for img in clerk.locator("#evidence img.photo").all())  # fmt: skip
    done = clerk.locator("#report-done")
    done.locator("input[name=measures]").fill("加固完成，恢复使用")
    done.locator("input[name=after]").set_input_files(str(_photo(tmp_path / "after.png", "PNG", (40, 40, 200))))
    clerk.click("#report-done-submit")
    _confirm_preview(clerk, "1 条将更新，0 条将退回")

    _run_pipeline(site)

    sup = _page(browser, site, "sup")
    sup.goto(f"{site.url}/hazards/{no}")
    assert sup.inner_text("#hazard-status") == "已整改待验收"
    five = sup.inner_text("#five-in-place")
    assert "马建国" in five and "12.5 万元" in five and "YA-2025-07" in five and "2025-12-31" in five
    assert sup.locator("#evidence img.photo").count() == 3 and sup.locator("#decide").count() == 1
    photo = sup.get_attribute("#evidence img.photo", "src")
    assert sup.request.get(site.url + photo + "?full=1").headers["content-type"] == "image/jpeg"
    outsider = _page(browser, site, "clerk101")  # another town: never the photo, whatever the URL
    assert outsider.request.get(site.url + photo).status == 403
    sup.goto(f"{site.url}/hazards?status=已整改待验收&grade=一般")
    boxes = sup.locator("input[name=hazard_no]")
    others = [boxes.nth(i).get_attribute("value") for i in range(2)]
    for n in others:
        sup.check(f"input[name=hazard_no][value='{n}']")
    sup.click("#batch-submit")
    _confirm_preview(sup, "2 条将更新，0 条将退回")
    sup.goto(f"{site.url}/hazards?status=已整改待验收&grade=重大&unit=T100")
    sup.check(f"input[name=hazard_no][value='{no}']")
    sup.select_option("#batch-decision-select", "reject")
    sup.fill("#batch-note", "加固范围不足，未见整改后检测报告")
    sup.fill("input[name=expert]", "王工")
    sup.click("#batch-submit")
    _confirm_preview(sup, "1 条将更新，0 条将退回")

    _run_pipeline(site)

    states = dict(
        published_rows(site, "SELECT hazard_no, status FROM hazards WHERE hazard_no IN (?, ?, ?)", [no, *others])
    )
    assert states == {no: "整改中", others[0]: "已销号", others[1]: "已销号"}
    clerk.goto(site.url + "/")
    rejected = clerk.inner_text("#rejections")
    assert no in rejected and "加固范围不足，未见整改后检测报告" in rejected
    clerk.click(f"#rejections a:text('{no}')")
    clerk.wait_for_selector("#hazard-status")
    assert clerk.inner_text("#hazard-status") == "整改中" and clerk.locator("#report-done").count() == 1


def test_duty_officer_declares_an_earthquake_and_opens_a_units_checklist(browser, site):
    """Issue 27: the duty officer's path in the browser — declare, the response runs (as the earthquake sensor's
    job does), then the 首报 and a town's 排查清单 open from the portal; the town's clerk sees the banner."""
    from contextlib import closing

    from pipeline.portal import accounts
    from pipeline.quake.event import find_event
    from pipeline.quake.respond import respond

    with closing(site.portal_db()) as con:  # the lock-out test above leaves the duty account locked
        accounts.unlock(con, "duty", by="admin")
        con.commit()
    duty = _page(browser, site, "duty")
    duty.goto(site.url + "/quake")
    for name, value in (("time", "2025-06-30 14:23:05"), ("lon", "106.19"), ("lat", "37.93"), ("depth", "10"),
                        ("mag", "6.5")):  # fmt: skip
        duty.fill(f"input[name={name}]", value)
    duty.click("text=登记并生成首报")
    duty.wait_for_load_state()
    event_id = "20250630T142305-M6.5"
    assert "declared=" in duty.url and event_id in duty.url
    event_file = site.data_raw / "earthquakes" / "YJJ" / f"{event_id}.yaml"
    assert event_file.is_file()
    try:
        respond(find_event(site.data_raw, event_id), site.settings.published, site.settings.database,
                site.settings.output)  # fmt: skip
        duty.goto(site.url + "/quake")
        assert duty.locator("a", has_text="首报.txt").count() == 1
        checklist = duty.request.get(f"{site.url}/quake/{event_id}/checklist?unit=T100")
        assert checklist.status == 200 and checklist.body()[:2] == b"PK"
        clerk = _page(browser, site, "clerk100")
        assert event_id in clerk.inner_text("#quake-banner")
        with clerk.expect_download() as download:
            clerk.click("#checklist-1")
        assert "金积镇" in download.value.suggested_filename
    finally:
        event_file.unlink(missing_ok=True)
