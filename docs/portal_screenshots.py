"""Screenshots of the portal's pages for the guides in docs/ (docs/screenshots/), taken in Debian's headless Chromium.

    make screenshots        # or: .venv/bin/python docs/portal_screenshots.py

Runs the portal over the sample district (the benchmark's copy, run once into benchmarks/data/) with
throw-away accounts, walks the pages a clerk, a supervisor, a leader, a duty officer and an administrator see
(an earthquake declared on the way, its response run as the earthquake sensor's job does), and saves one PNG
per page, reduced to 256 colours so the repository stays small.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_portal import PASSWORD, ensure_sample, portal_server, survey_csv  # noqa: E402
from pipeline.platform.paths import PROJECT_ROOT  # noqa: E402

OUT = PROJECT_ROOT / "docs" / "screenshots"
EVENT_ID = "20250630T142305-M5.2"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


def accounts(portal_db: Path) -> None:
    from contextlib import closing

    from pipeline.portal import accounts as acc
    from pipeline.registries import uploads as upload_audit

    with closing(upload_audit.connect(portal_db)) as con:
        acc.ensure_tables(con)
        for user, name, unit, role in (("clerk", "马建国", "T100", "clerk"), ("sup", "李监管", "YJJ", "supervisor"),
                                       ("leader", "王区长", "QZF", "analyst"), ("admin", "系统管理员", "YJJ", "admin"),
                                       ("duty", "值班员", "YJJ", "duty")):  # fmt: skip
            acc.create_account(con, user, name, unit, role, PASSWORD, "screenshots")


def main() -> None:
    from playwright.sync_api import sync_playwright

    output = ensure_sample()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        portal_db = Path(tmp) / "portal.sqlite3"
        accounts(portal_db)
        survey = Path(tmp) / "金积镇房屋补充调查.csv"
        survey.write_bytes(survey_csv(300, 7))
        data_raw = Path(tmp) / "data_raw"  # the confirmed upload lands in a copy, never in the project's sample
        shutil.copytree(PROJECT_ROOT / "data_raw", data_raw)
        env = {
            "LITONG_OUTPUT": str(output),
            "LITONG_PORTAL_DB": str(portal_db),
            "LITONG_DATA_RAW": str(data_raw),
            "LITONG_PORTAL_RUN_ON_CONFIRM": "0",
        }  # the screenshots need no run (and the machine is shared)
        os.environ.update(env)  # the earthquake response below runs in this process, on the portal's folders
        with portal_server(env) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            shoot(browser, url, survey)
            browser.close()


def shoot(browser, url: str, survey: Path) -> None:
    def page_for(user: str, **context):
        page = browser.new_context(**({"viewport": {"width": 1280, "height": 900}} | context)).new_page()
        page.set_default_timeout(60_000)
        page.goto(url + "/login")
        if user:
            page.fill("#username", user)
            page.fill("#password", PASSWORD)
            page.click("#login")
            page.wait_for_load_state()
        return page

    def save(page, name: str, full: bool = True) -> None:
        path = OUT / f"{name}.png"
        page.screenshot(path=str(path), full_page=full)
        small(path)
        print(path)

    anon = page_for("")
    save(anon, "01_login")
    clerk = page_for("clerk")
    save(clerk, "02_home_clerk")
    clerk.goto(url + "/upload")
    clerk.set_input_files("#file", str(survey))
    clerk.click("#preview")
    clerk.wait_for_selector("#refused-buildings")
    save(clerk, "03_upload_preview")
    clerk.click("#confirm")
    clerk.wait_for_selector("#status")
    save(clerk, "04_upload_submitted")
    clerk.goto(url + "/uploads")
    save(clerk, "12_uploads", full=False)
    clerk.goto(url + "/hazards?overdue=1")
    save(clerk, "05_my_hazards", full=False)
    clerk.click("table.hazards a")
    clerk.wait_for_selector("#hazard-status")
    save(clerk, "13_hazard_clerk")
    sup = page_for("sup")
    sup.goto(url + "/hazards?status=已整改待验收")
    sup.click("table.hazards a")
    save(sup, "06_hazard_supervisor")
    leader = page_for("leader")
    leader.goto(url + "/leaders")
    save(leader, "07_leaders")
    phone = page_for("leader", viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    phone.goto(url + "/leaders")
    save(phone, "08_leaders_phone", full=False)
    clerk.goto(url + "/templates")
    save(clerk, "09_templates", full=False)
    duty = page_for("duty")
    duty.goto(url + "/quake")
    save(duty, "10_quake_duty", full=False)
    declare_earthquake(duty, url)
    save(duty, "14_quake_declared", full=False)
    clerk.goto(url + "/")
    save(clerk, "15_home_quake", full=False)
    clerk.goto(url + "/upload")
    clerk.select_option("#target", label=next(o for o in clerk.locator("#target option").all_inner_texts()
                                               if "地震事件" in o))  # fmt: skip
    save(clerk, "16_quake_feedback_upload", full=False)
    admin = page_for("admin")
    admin.goto(url + "/admin/accounts")
    save(admin, "11_admin_accounts")


def declare_earthquake(duty, url: str) -> None:
    """The duty officer's form, then the response the earthquake sensor would start (首报, 排查清单, map)."""
    from pipeline.portal.settings import Settings
    from pipeline.quake.event import find_event
    from pipeline.quake.respond import respond

    duty.goto(url + "/quake")
    for name, value in (("time", "2025-06-30 14:23:05"), ("lon", "106.19"), ("lat", "37.93"), ("depth", "10"),
                        ("mag", "5.2"), ("place", "宁夏吴忠市利通区")):  # fmt: skip
        duty.fill(f"input[name={name}]", value)
    duty.click("text=登记并生成首报")
    duty.wait_for_load_state()
    settings = Settings.from_env()
    respond(find_event(settings.data_raw, EVENT_ID), settings.published, settings.database, settings.output)
    duty.goto(url + "/quake")


def small(path: Path) -> None:
    """The PNG in 256 colours when that is smaller (a page's flat colours survive)."""
    from PIL import Image

    with Image.open(path) as image:
        reduced = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    smaller = path.with_suffix(".small.png")
    reduced.save(smaller, optimize=True)
    if smaller.stat().st_size < path.stat().st_size:
        smaller.replace(path)
    else:
        smaller.unlink()


if __name__ == "__main__":
    main()
