"""Screenshots of the portal's pages for the README (docs/screenshots/), taken in Debian's headless Chromium.

    .venv/bin/python docs/portal_screenshots.py

Runs the portal over the sample district (the benchmark's copy, run once into benchmarks/data/) with
throw-away accounts, walks the pages a clerk, a supervisor, a leader and an administrator see, and saves
one PNG per page.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_portal import PASSWORD, ensure_sample, portal_server, survey_csv  # noqa: E402
from pipeline.platform.paths import PROJECT_ROOT  # noqa: E402

OUT = PROJECT_ROOT / "docs" / "screenshots"
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
        env = {"LITONG_OUTPUT": str(output), "LITONG_PORTAL_DB": str(portal_db), "LITONG_DATA_RAW": str(data_raw)}
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
        page.screenshot(path=str(OUT / f"{name}.png"), full_page=full)
        print(OUT / f"{name}.png")

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
    clerk.goto(url + "/hazards?overdue=1")
    save(clerk, "05_my_hazards", full=False)
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
    admin = page_for("admin")
    admin.goto(url + "/admin/accounts")
    save(admin, "11_admin_accounts")


if __name__ == "__main__":
    main()
