"""The district's web portal: log in, upload with a preview, see receipts, my hazards, the leaders' page.

Server-rendered pages (FastAPI + Jinja2, autoescaped: every value is shown as text). The portal writes
only two things: its own SQLite file (accounts, sessions, the upload audit) and confirmed files into
data_raw/ — the pipeline, started by its upload sensor, stays the one writer of the database. Pages read
the published snapshot (reads.py); previews run in worker processes (preview.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import multiprocessing
import os
import re
import sqlite3
import threading
import weakref
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager, closing
from pathlib import Path
from urllib.parse import quote as url_quote
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipeline.intake.blank_templates import guide_row, template_stem, write_xlsx
from pipeline.intake.ingest import authority_problem
from pipeline.ledger import duban
from pipeline.platform import clock
from pipeline.portal import accounts, evidence, preview, reads, run_progress, runner, uploads
from pipeline.portal.accounts import ROLES, Account, AccountError, Session
from pipeline.portal.guards import BodyLimit, PageTimeout
from pipeline.portal.settings import Settings
from pipeline.registries import uploads as upload_audit
from pipeline.registries.events import EVENT_ID_PATTERN, EVENTS_FOLDER
from pipeline.registries.templates import KINDS, load_template, towns
from pipeline.registries.units import survey_rounds, unit_label, units

HERE = Path(__file__).parent
log = logging.getLogger(__name__)
SESSION_COOKIE = "litong_session"
LOGIN_CSRF_COOKIE = "litong_login_csrf"
CHARTS = (
    ("levels_by_town", "各乡镇资产风险等级"),
    ("open_hazards_by_unit", "各责任单位未销号隐患"),
    ("rectification_progress", "隐患整改进度"),
    ("asset_map", "资产风险分布图"),
    ("top_assets", "风险最高的十个对象"),
    ("hazchem_grades", "危险化学品重大危险源分级"),
    ("shelter_capacity", "各乡镇应急避难场所容量"),
)
KIND_ZH = {k: load_template(k).title for k in (*KINDS, "feedback", "quake_feedback")}
DECISIONS = {
    "accept": ("验收通过（已销号）", {"status": "已销号", "accept_result": "通过"}),
    "reject": ("验收不通过（退回整改）", {"status": "已销号", "accept_result": "不通过"}),
    "approve_extension": ("批准延期", {"extension_decision": "批准"}),
    "refuse_extension": ("不批准延期", {"extension_decision": "不批准"}),
    "major": ("认定为重大隐患（说明填理由）", {"decision": "认定为重大"}),  # issue 26 §1: the supervising department's
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def unit_name(code: str | None) -> str:
    """A unit as pages name it: the registry's name (a district unit's or an enterprise's), never its code."""
    if code and code in units():
        return units()[code].name
    return code or "（未填写）"


def beijing(value: object) -> str:
    """A recorded time (or an ISO text of it) to the minute. Every time the product records is naive Beijing time
    already (clock.beijing_now), so a naive value is shown as it is; an aware one is converted."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, dt.datetime):
        return "" if value is None else str(value)
    if value.tzinfo is not None:
        value = value.astimezone(clock.DISTRICT_TZ)
    return f"{value:%Y-%m-%d %H:%M}"


WEB_FILE = re.compile(r"网页办理_(?P<what>[A-Za-z_]+|挂牌督办|督办核销)_(?P<no>.+?)_\d{6}\.csv")
WEB_ACTIONS_ZH = {"accept": "验收通过", "reject": "验收不通过", "approve_extension": "批准延期",
                  "refuse_extension": "不批准延期", "major": "认定为重大隐患"}  # fmt: skip


def file_title(name: object) -> str:
    """A file as people read it: 「网页办理：验收通过 JZ-…」 for a decision made on a page; else the file's own
    name, without the folders it was filed under (no data_raw/... path in a page)."""
    text = str(name or "").replace("\\", "/").rsplit("/", 1)[-1]
    m = WEB_FILE.fullmatch(text)
    if m:
        return f"网页办理：{WEB_ACTIONS_ZH.get(m['what'], m['what'])} {m['no']}"
    return text


class Redirect(Exception):
    def __init__(self, url: str):
        self.url = url


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    clock.use_data_raw(settings.data_raw)
    state = PortalState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.start()
        try:
            yield
        finally:
            state.stop()

    app = FastAPI(
        title="利通区地震风险隐患排查平台", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.portal = state
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _add_handlers(app, state)
    _add_routes(app, state)
    app.add_middleware(BodyLimit, limit_mb=settings.max_upload_mb)
    app.add_middleware(PageTimeout, seconds=settings.page_seconds,
                       post_seconds=settings.page_seconds + settings.preview_seconds)  # fmt: skip
    return app


class PortalState:
    """What the pages share: settings, the portal database, the snapshot reader, the preview workers."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.snapshots = reads.Snapshots(settings.published)
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.globals.update(
            ROLES=ROLES, KIND_ZH=KIND_ZH, unit_label=unit_label, lock_after=settings.lock_after
        )
        self.templates.env.globals["may_see_duban"] = reads.may_see_duban  # the 督办 page's link
        self.templates.env.globals["unit_name"] = unit_name  # issue 27: names, never codes, in pages
        self.templates.env.globals["person"] = self.person
        self.templates.env.filters["beijing"] = beijing
        self.templates.env.filters["file_title"] = file_title
        self.templates.env.globals["town_names"] = towns()  # the hazard list's town filter
        self.templates.env.filters["num"] = lambda v: f"{v:,}" if isinstance(v, int) else ("" if v is None else v)
        self.pool: ProcessPoolExecutor | None = None
        self.runner = (runner.Runner(settings.data_raw, settings.output, settings.database, settings.portal_db.parent)
                       if settings.run_on_confirm else None)  # fmt: skip
        self._over_memory: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()  # pools a worker was killed in
        self._local = threading.local()
        with closing(self._connect()) as con:
            accounts.ensure_tables(con)

    def person(self, username: str | None) -> str:
        """An account's person by name (its display name); the user name only when the account is gone."""
        a = accounts.get_account(self.db(), username) if username else None
        return a.display_name if a else (username or "")

    def _connect(self) -> sqlite3.Connection:
        return upload_audit.connect(self.settings.portal_db)

    def db(self) -> sqlite3.Connection:
        """This thread's connection to the portal database."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = self._connect()
        return con

    def start(self) -> None:
        with closing(self._connect()) as con:
            uploads.recover(con, self.settings.staging_dir, self.settings.data_raw)
            uploads.expire_stale(con, self.settings.staging_dir)
        self._new_pool()

    def _new_pool(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        self.pool = ProcessPoolExecutor(self.settings.preview_workers, mp_context=ctx, initializer=preview.init_worker,
                                        initargs=(os.getpid(),))  # fmt: skip
        for _ in range(self.settings.preview_workers):
            self.pool.submit(preview.warm_up)

    def stop(self) -> None:
        """The preview workers end with the portal (a worker busy with a preview is killed, not waited for)."""
        if self.runner:
            self.runner.stop()
        if self.pool:
            self._kill(self.pool)
            self.pool = None

    async def preview(self, req: preview.Request) -> preview.Result:
        """The preview in a worker process, bounded in time and memory. A worker that died (killed here past its
        memory bound, or by anyone), met MemoryError or ran past the time bound is replaced, so one pathological
        file never leaves the portal without previews. A file refused for its size is never offered for
        confirmation; one that only took too long still is (the run has no such time bound)."""
        pool = self.pool
        watch = asyncio.ensure_future(self._bound_memory(pool))
        try:
            future = asyncio.get_running_loop().run_in_executor(pool, preview.run, req)
            result = await asyncio.wait_for(future, self.settings.preview_seconds)
        except TimeoutError:
            self._replace(pool)
            return preview.Result([], error="预览超过时限：文件可能过大或已损坏，请拆分或检查后重试；"
                                            "仍可确认提交：流水线会处理并出具回执")  # fmt: skip
        except BrokenProcessPool:
            self._replace(pool)
            if pool in self._over_memory:
                return preview.Result([], error=preview.TOO_LARGE_ZH, too_large=True)
            log.warning("a preview worker died previewing %s", req.staged_file)
            return preview.Result([], error="预览的处理进程意外退出（文件可能过大或已损坏）：此文件未能预览，不能提交。"
                                            "请重试；如再次出现，请拆分为几个较小的文件或另存为CSV UTF-8后上传",
                                  too_large=True)  # fmt: skip
        finally:
            watch.cancel()
        if result.too_large:
            self._replace(pool)  # a worker that met MemoryError is not trusted with the next file
        return result

    async def _bound_memory(self, pool: ProcessPoolExecutor) -> None:
        """Kill a worker of `pool` whose resident memory passes the bound (watched from here, so a worker busy in
        C code that holds its own interpreter cannot miss it); its preview then ends as refused for size."""
        limit = self.settings.preview_memory_mb << 20
        while limit > 0:
            for process in list(getattr(pool, "_processes", {}).values()):
                if preview.resident_bytes(process.pid) > limit:
                    log.warning("preview worker %s passed %s MB: killed", process.pid, self.settings.preview_memory_mb)
                    self._over_memory.add(pool)
                    process.kill()
            await asyncio.sleep(0.1)

    def _replace(self, pool: ProcessPoolExecutor | None) -> None:
        if pool is not None and self.pool is pool:
            self._kill(pool)
            self._new_pool()

    @staticmethod
    def _kill(pool: ProcessPoolExecutor) -> None:
        processes = list(getattr(pool, "_processes", {}).values())  # the executor has no public kill
        for process in processes:
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.join(5)

    def today(self) -> dt.date:
        return clock.district_today()

    def ledger(self) -> str:
        """The published ledger's list columns as of the district's date (built once per publication and day)."""
        return self.snapshots.ledger_table(self.today())

    def render(
        self, request: Request, name: str, session: Session | None, status: int = 200, **context
    ) -> HTMLResponse:
        context |= {
            "session": session,
            "account": session.account if session else None,
            "csrf": session.csrf_token if session else "",
            "published_at": self.snapshots.published_at(),
            "as_of": self.today(),
            "sample": clock.sample_as_of() is not None,
        }
        return self.templates.TemplateResponse(request, name, context, status_code=status)


# --- sessions and errors -----------------------------------------------------------------


def _session(state: PortalState, request: Request) -> Session:
    s = accounts.session_for(state.db(), request.cookies.get(SESSION_COOKIE), state.settings.idle_minutes,
                             state.settings.max_session_hours)  # fmt: skip
    if s is None:
        raise Redirect("/login?" + urlencode({"next": request.url.path}))
    if s.account.must_change and request.url.path not in ("/account", "/logout"):
        raise Redirect("/account")  # a password an administrator set is changed before anything else
    return s


async def _form(state: PortalState, request: Request, session: Session) -> dict:
    """The posted form, after its CSRF token is checked against the session's (403 otherwise)."""
    form = await request.form(max_files=1, max_fields=40)
    if not accounts.csrf_ok(session.csrf_token, form.get("csrf")):
        raise HTTPException(403, "页面已过期或请求来源不明（CSRF校验失败），请刷新页面后重试")
    return form


def _require(condition: bool, message: str = "无权访问：只能查看和办理本单位的事项") -> None:
    if not condition:
        raise HTTPException(403, message)


def _add_handlers(app: FastAPI, state: PortalState) -> None:
    @app.exception_handler(Redirect)
    async def redirect(request: Request, exc: Redirect):
        return RedirectResponse(exc.url, status_code=303)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return state.render(request, "error.html", None, status=exc.status_code, message=exc.detail,
                            code=exc.status_code)  # fmt: skip

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return state.render(request, "error.html", None, status=500, code=500,
                            message="服务器内部错误，已记录。请稍后重试；如反复出现，请联系区应急管理局（地震局）")  # fmt: skip

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response


# --- routes --------------------------------------------------------------------------------


def _add_routes(app: FastAPI, state: PortalState) -> None:
    _login_routes(app, state)
    _upload_routes(app, state)
    _hazard_routes(app, state)
    _report_routes(app, state)
    _duban_routes(app, state)
    _reading_routes(app, state)
    _admin_routes(app, state)


def _safe_next(target: str | None) -> str:
    """Only a local path (never another site) after logging in."""
    return target if target and re.fullmatch(r"/[A-Za-z0-9/_\-.%]*", target) and not target.startswith("//") else "/"


def _login_routes(app: FastAPI, state: PortalState) -> None:
    settings = state.settings

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/"):
        token = accounts.secrets.token_urlsafe(24)
        response = state.render(request, "login.html", None, next=_safe_next(next), login_csrf=token, error=None)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=settings.secure_cookie)
        return response

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request):
        form = await request.form(max_files=0, max_fields=10)
        target = _safe_next(form.get("next"))
        if not accounts.csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE, ""), form.get("csrf")):
            raise HTTPException(403, "登录页面已过期，请刷新后重新登录")
        client = request.client.host if request.client else ""
        try:
            account = accounts.authenticate(state.db(), str(form.get("username", "")).strip(),
                                            str(form.get("password", "")), settings.lock_after,
                                            settings.lock_minutes, client)  # fmt: skip
        except AccountError as e:
            token = accounts.secrets.token_urlsafe(24)
            response = state.render(request, "login.html", None, status=401, next=target, login_csrf=token,
                                    error=str(e), username=form.get("username", ""))  # fmt: skip
            response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                                secure=settings.secure_cookie)  # fmt: skip
            return response
        token = accounts.start_session(state.db(), account.username)
        response = RedirectResponse("/account" if account.must_change else target, status_code=303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=settings.secure_cookie,
                            max_age=settings.max_session_hours * 3600)  # fmt: skip
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    @app.post("/logout")
    async def logout(request: Request):
        session = _session(state, request)
        await _form(state, request, session)
        accounts.end_session(state.db(), request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request):
        session = _session(state, request)
        recent = uploads.uploads_of(state.db(), session.account, limit=10)
        counts, events, rejected = None, [], []
        if session.account.role != "admin":
            with state.snapshots.cursor() as cur:
                if cur is not None:
                    counts = reads.todo_counts(cur, state.ledger(), session.account, state.today())
                    rejected = reads.rejections(cur, session.account)
            events = reads.open_events(settings.data_raw)
        return state.render(request, "home.html", session, recent=recent, counts=counts, due_days=reads.DUE_DAYS,
                            open_events=events, checklists=_checklists(state, session.account, events),
                            rejected=rejected)  # fmt: skip

    @app.get("/account", response_class=HTMLResponse)
    def account_page(request: Request):
        return state.render(request, "account.html", _session(state, request), message=None, error=None)

    @app.post("/account", response_class=HTMLResponse)
    async def change_password(request: Request):
        session = _session(state, request)
        form = await _form(state, request, session)
        try:
            accounts.authenticate(state.db(), session.account.username, str(form.get("old", "")),
                                  settings.lock_after, settings.lock_minutes)  # fmt: skip
            if form.get("new") != form.get("again"):
                raise AccountError("两次输入的新密码不一致")
            accounts.set_password(state.db(), session.account.username, str(form.get("new", "")),
                                  session.account.username)  # fmt: skip
        except AccountError as e:
            return state.render(request, "account.html", session, status=400, message=None, error=str(e))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/healthz")
    def healthz():
        return {"ok": True, "published_at": str(state.snapshots.published_at() or "")}


# --- upload ----------------------------------------------------------------------------------


def upload_choices(account: Account, data_raw: Path) -> dict[str, list[str]]:
    """kind -> the folders (rounds, today's batch, open events) the account may upload into."""
    if not account.can_upload:
        return {}
    out: dict[str, list[str]] = {}
    today = clock.district_today()
    started = [c for c, r in survey_rounds().items() if r.starts_on <= today] or list(survey_rounds())
    for kind in KINDS:
        if authority_problem(account.unit_code, kind) is None:
            out[kind] = started[::-1]  # the current round first
    out["feedback"] = [f"{clock.district_today():%Y-%m-%d}"]
    if events := reads.open_events(data_raw):
        out["quake_feedback"] = events
    return out


def _upload_routes(app: FastAPI, state: PortalState) -> None:
    settings = state.settings

    @app.get("/upload", response_class=HTMLResponse)
    def upload_page(request: Request):
        session = _session(state, request)
        _require(session.account.can_upload, "本账号的角色不能上传文件")
        choices = upload_choices(session.account, settings.data_raw)
        return state.render(request, "upload.html", session, choices=choices, error=None,
                            max_mb=settings.max_upload_mb)  # fmt: skip

    @app.post("/upload", response_class=HTMLResponse)
    async def upload(request: Request):
        session = _session(state, request)
        _require(session.account.can_upload, "本账号的角色不能上传文件")
        form = await _form(state, request, session)
        kind, _, folder = str(form.get("target", "")).partition("/")
        file = form.get("file")
        choices = upload_choices(session.account, settings.data_raw)
        if kind not in choices or folder not in choices[kind]:
            raise HTTPException(403, f"本单位不能报送此类文件或此轮次：{KIND_ZH.get(kind, kind)} {folder}")
        if not isinstance(file, UploadFile) or not file.filename:
            return state.render(request, "upload.html", session, status=400, choices=choices,
                                error="请选择要上传的文件", max_mb=settings.max_upload_mb)  # fmt: skip
        return await _stage_and_preview(request, state, session, kind, folder, file.filename, _chunks(file))

    @app.get("/upload/{upload_id}/preview", response_class=HTMLResponse)
    def preview_page(request: Request, upload_id: str):
        return _preview_page(request, state, _session(state, request), upload_id)

    @app.post("/upload/{upload_id}/confirm")
    async def confirm(request: Request, upload_id: str):
        session = _session(state, request)
        await _form(state, request, session)
        row = _own_upload(state, session, upload_id)
        if row["state"] != "previewed":
            raise Redirect(f"/uploads/{upload_id}")
        if preview.Result.from_json(_preview_json(settings, upload_id)).refused_for_size:
            raise HTTPException(409, f"{row['file_name']}：{preview.TOO_LARGE}，不能提交。请拆分为几个较小的文件"
                                     "（例如按乡镇），或另存为CSV UTF-8后重新上传")  # fmt: skip
        staged_photos = settings.staging_dir / upload_id / evidence.STAGED_FOLDER
        if staged_photos.is_dir():  # a report from the hazard page: its photos land before its row
            evidence.land(staged_photos, settings.data_raw)
        uploads.land(state.db(), settings.staging_dir, settings.data_raw, row)
        if state.runner:  # the run starts now, not at the upload sensor's next tick
            state.runner.request(row["kind"])
        raise Redirect(f"/uploads/{upload_id}")

    @app.post("/upload/{upload_id}/discard")
    async def discard(request: Request, upload_id: str):
        session = _session(state, request)
        await _form(state, request, session)
        _own_upload(state, session, upload_id)
        uploads.discard(state.db(), settings.staging_dir, upload_id)
        raise Redirect("/upload")

    @app.get("/uploads", response_class=HTMLResponse)
    def upload_list(request: Request):
        session = _session(state, request)
        rows = uploads.uploads_of(state.db(), session.account, 200)
        if any(r["state"] == "landed" and not r["result"] for r in rows):
            _record_results(state, [r for r in rows if r["state"] == "landed" and not r["result"]])
            rows = uploads.uploads_of(state.db(), session.account, 200)
        return state.render(request, "uploads.html", session, rows=rows)

    @app.get("/uploads/{upload_id}", response_class=HTMLResponse)
    def upload_status(request: Request, upload_id: str):
        session = _session(state, request)
        row = _visible_upload(state, session, upload_id)
        outcomes, running, runs, failure = [], None, [], None
        if row["state"] == "landed":
            outcomes = _record_results(state, [row]).get(upload_id, [])
            row = uploads.get_upload(state.db(), upload_id)
            if not outcomes and row["result"] != REPLACED_ZH:
                running = reads.writer_running(settings.database)
                runs = run_progress.active_runs()
                failure = None if running or runs else run_progress.last_failure()  # a run that stopped
        stored = preview.Result.from_json(_preview_json(settings, upload_id)) if row["state"] == "previewed" else None
        started = bool(state.runner and state.runner.busy())
        return state.render(request, "upload_status.html", session, row=row, outcomes=outcomes, running=running,
                            runs=runs, failure=failure, result=stored, started=started,
                            poll_seconds=2 if state.runner else 5)  # fmt: skip

    @app.get("/uploads/{upload_id}/receipt/{kind}")
    def receipt(request: Request, upload_id: str, kind: str):
        session = _session(state, request)
        row = _visible_upload(state, session, upload_id)
        with state.snapshots.cursor() as cur:
            found = [o for o in reads.outcome(cur, settings.output / "receipts", row["rel_path"] or "", row["sha256"],
                                              row["unit_code"]) if o.kind == kind] if cur else []  # fmt: skip
        if not found:
            raise HTTPException(404, "回执尚未生成：请等本次处理完成后再下载")
        return _download(_regular_file(settings.output / "receipts", found[0].receipt,
                                       "回执尚未生成：请等本次处理完成后再下载"))  # fmt: skip


def _record_results(state: PortalState, rows: list[sqlite3.Row]) -> dict[str, list[reads.FileOutcome]]:
    """What the last published run made of these landed uploads, also written into their audit records."""
    out: dict[str, list[reads.FileOutcome]] = {}
    with state.snapshots.cursor() as cur:
        if cur is None:
            return out
        for row in rows:
            if not row["rel_path"] or row["kind"] == EVENTS_FOLDER:
                continue
            found = reads.outcome(cur, state.settings.output / "receipts", row["rel_path"], row["sha256"],
                                  row["unit_code"])  # fmt: skip
            if found:
                out[row["upload_id"]] = found
                uploads.set_result(state.db(), row["upload_id"], "；".join(_outcome_line(o) for o in found))
            elif _replaced(state.settings.data_raw / row["rel_path"], row["sha256"]):
                uploads.set_result(state.db(), row["upload_id"], REPLACED_ZH)
    return out


REPLACED_ZH = "处理前已被同名文件的新版本替换，本版本未单独处理（见新版本的回执）"


def _replaced(path: Path, sha256: str) -> bool:
    """Another version of the file took its place before any run read this one."""
    from pipeline.intake.ingest import sha256_of

    return not path.is_file() or sha256_of(path) != sha256


def _outcome_line(o: reads.FileOutcome) -> str:
    if o.status != "ingested":
        return f"{o.title}：文件无法读取（{o.problem}）"
    return f"{o.title}：接收{o.accepted}行，退回{o.refused}行" + (f"；{o.detail}" if o.detail else "")


async def _chunks(file: UploadFile):
    while chunk := await file.read(uploads.CHUNK):
        yield chunk


async def _one_chunk(data: bytes):
    yield data


def _preview_json(settings: Settings, upload_id: str) -> str:
    path = settings.staging_dir / upload_id / "preview.json"
    return path.read_text(encoding="utf-8") if path.is_file() else '{"parts": [], "error": "预览已过期"}'


async def _stage_and_preview(request: Request, state: PortalState, session: Session, kind: str, folder: str,
                             original_name: str, chunks, photos: list[tuple[bytes, str]] = ()) -> HTMLResponse:  # fmt: skip
    settings = state.settings
    try:
        staged = await uploads.receive(chunks, settings.staging_dir, original_name, settings.max_upload_mb << 20)
    except uploads.UploadRefused as e:
        choices = upload_choices(session.account, settings.data_raw)
        return state.render(request, "upload.html", session, status=e.status, choices=choices, error=str(e),
                            max_mb=settings.max_upload_mb)  # fmt: skip
    for data, suffix in photos:  # kept with the staged report until it is confirmed (or discarded, or expires)
        evidence.store(staged.path.parent / evidence.STAGED_FOLDER, data, suffix)
    req = preview.Request(str(staged.path), kind, session.account.unit_code, folder, str(settings.data_raw),
                          str(settings.published), settings.preview_rows_shown)  # fmt: skip
    started = asyncio.get_running_loop().time()
    result = await state.preview(req)
    seconds = asyncio.get_running_loop().time() - started
    (staged.path.parent / "preview.json").write_text(result.to_json(), encoding="utf-8")
    (staged.path.parent / PREVIEW_SECONDS).write_text(f"{seconds:.3f}", encoding="utf-8")
    uploads.record_preview(state.db(), staged, session.account, kind, folder, original_name, result.accepted,
                           result.refused, result.summary_zh())  # fmt: skip
    raise Redirect(f"/upload/{staged.upload_id}/preview")  # POST → redirect → GET: a refresh previews nothing again


PREVIEW_SECONDS = "preview_seconds.txt"


def _preview_page(request: Request, state: PortalState, session: Session, upload_id: str) -> HTMLResponse:
    """The stored preview of an upload the account made and has not confirmed or discarded yet."""
    settings = state.settings
    row = _own_upload(state, session, upload_id)
    if row["state"] != "previewed":
        raise Redirect(f"/uploads/{upload_id}")
    result = preview.Result.from_json(_preview_json(settings, upload_id))
    try:
        seconds = float((settings.staging_dir / upload_id / PREVIEW_SECONDS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        seconds = 0.0
    replaces = (settings.data_raw / uploads.target_rel_path(row)).is_file()
    return state.render(request, "preview.html", session, row=row, result=result, seconds=seconds,
                        replaces=replaces)  # fmt: skip


def _own_upload(state: PortalState, session: Session, upload_id: str) -> sqlite3.Row:
    """An upload the account itself previewed (only its uploader confirms or discards it)."""
    row = uploads.get_upload(state.db(), upload_id)
    _require(row is not None and row["username"] == session.account.username, "无权操作此上传")
    return row


def _visible_upload(state: PortalState, session: Session, upload_id: str) -> sqlite3.Row:
    row = uploads.get_upload(state.db(), upload_id)
    _require(row is not None and (session.account.reads_all or row["unit_code"] == session.account.unit_code))
    return row


def _regular_file(root: Path, path: Path, missing: str = "没有这个文件") -> Path:
    """`path` if it is a regular file under `root` reached without following a symbolic link (a link placed in
    an output folder must never serve a file from elsewhere, the portal's own database among them); 404 else."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        raise HTTPException(404, missing) from None
    current = root
    for part in rel.parts:
        current = current / part
        if part in ("", ".", "..") or current.is_symlink():
            raise HTTPException(404, missing)
    if not path.is_file():
        raise HTTPException(404, missing)
    return path


def _download(path: Path, name: str | None = None) -> FileResponse:
    name = name or path.name
    return FileResponse(path, headers={"Content-Disposition": f"attachment; filename*=UTF-8''{url_quote(name)}"})


# --- my hazards ---------------------------------------------------------------------------------


def _filter(request: Request, as_of: dt.date | None = None) -> reads.HazardFilter:
    q = request.query_params
    page = q.get("page", "1")
    due = q.get("due", "")
    return reads.HazardFilter(
        status=q.get("status", "") if q.get("status", "") in reads.STATUSES else "",
        grade=q.get("grade", "") if q.get("grade", "") in reads.GRADES else "",
        kind=q.get("kind", "") if q.get("kind", "") in KINDS else "",
        overdue_only=q.get("overdue") == "1",
        unit=q.get("unit", ""),
        town=q.get("town", "") if q.get("town", "") in towns() else "",
        page=int(page) if page.isdigit() and 0 < int(page) < 100_000 else 1,
        as_of=as_of or clock.district_today(),
        due_within=int(due) if due.isdigit() and 0 < int(due) <= 366 else 0,
        extension_pending=q.get("extension") == "1",
        supervised=q.get("duban") == "1",
        to_accept=q.get("accept") == "1",
        text=q.get("q", "").strip()[:100],
        due_from=_date_or_none(q.get("due_from", "")),
        due_to=_date_or_none(q.get("due_to", "")),
    )


def _date_or_none(text: str) -> dt.date | None:
    """A date typed in a filter (YYYY-MM-DD); anything else is ignored."""
    try:
        return dt.date.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None


HAZARD_NO_LIKE = re.compile(r"[A-Za-z]{1,6}-[0-9A-Za-z]+(-[0-9A-Za-z]+)*")
NOT_FOUND_ZH = "未找到隐患编号“{}”：请核对编号（如 JZ-640302100-000001-B01）"


def _find_number(state: PortalState, account: Account, text: str) -> str | None:
    """A search that is a hazard number: the hazard's page when the account may see it; 「无权查看」 when the hazard
    is another unit's; 「未找到」 when no hazard has that number. None: not a number, search by text."""
    if not HAZARD_NO_LIKE.fullmatch(text):
        return None
    number = text.upper()
    with state.snapshots.cursor() as cur:
        rows = cur.execute("SELECT * FROM hazards WHERE hazard_no = ?", [number]).fetchall() if cur else []
        names = [d[0] for d in cur.description] if rows else []
    if not rows:
        raise HTTPException(404, NOT_FOUND_ZH.format(text))
    _require(reads.may_see(account, dict(zip(names, rows[0], strict=True))),
             f"无权查看隐患 {number}：它不属于本单位，也不由本单位监管")  # fmt: skip
    return f"/hazards/{url_quote(number)}"


def _checklists(state: PortalState, account: Account, events: list[str]) -> dict[str, bool]:
    """event -> whether the account's unit has a 排查清单 for it."""
    return {e: (state.settings.output / "quake" / e / "排查清单" / f"排查清单_{account.unit_code}.xlsx").is_file()
            for e in events}  # fmt: skip


def _hazard_routes(app: FastAPI, state: PortalState) -> None:
    @app.get("/hazards", response_class=HTMLResponse)
    def hazard_list(request: Request):
        session = _session(state, request)
        _require(session.account.role != "admin", "系统管理员账号只管理账号")
        f = _filter(request, state.today())
        if f.text and (target := _find_number(state, session.account, f.text)):
            raise Redirect(target)
        with state.snapshots.cursor() as cur:
            visible = reads.visible_units(session.account, cur, state.ledger()) if cur else [session.account.unit_code]
            if f.unit:
                _require(visible is None or f.unit in visible)
            rows, total = reads.hazards(cur, state.ledger(), session.account, f) if cur else ([], 0)
            decidable = reads.decidable(cur, state.ledger(), session.account,
                                        [r["hazard_no"] for r in rows if r["status"] == "已整改待验收"]) if cur else set()  # fmt: skip
        query = {k: v for k, v in request.query_params.items() if k != "page"}
        return state.render(request, "hazards.html", session, rows=rows, total=total, f=f, statuses=reads.STATUSES,
                            grades=reads.GRADES, visible=visible, page_rows=reads.PAGE_ROWS,
                            query=urlencode(query), kinds=KINDS, towns=towns(), due_days=reads.DUE_DAYS,
                            unit_name=unit_name, decidable=decidable)  # fmt: skip

    @app.get("/hazards/feedback.xlsx")
    def feedback_file(request: Request):
        session = _session(state, request)
        _require(session.account.can_upload, "本账号的角色不报送整改反馈")
        f = _filter(request)
        with state.snapshots.cursor() as cur:
            rows = reads.feedback_rows(cur, state.ledger(), session.account, f) if cur else []
        unit = session.account.unit_code
        for r in rows:
            r["unit"] = unit
        name = f"整改反馈_{unit_name(unit)}_{state.today():%Y%m%d}.xlsx"
        path = state.settings.staging_dir / "downloads" / f"{accounts.secrets.token_hex(8)}.xlsx"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_xlsx(load_template("feedback"), path, rows, info=reads.FEEDBACK_INFO)
        return FileResponse(path, headers={"Content-Disposition": f"attachment; filename*=UTF-8''{url_quote(name)}"},
                            background=_unlink_after(path))  # fmt: skip

    @app.get("/hazards/export.xlsx")
    def export_list(request: Request):
        """The filtered list with every column of the ledger (Chinese headers, text neutralised by the ledger's
        own streaming writer), named by the unit and the district's date."""
        from pipeline.formats.xlsx_stream import streamed_workbook
        from pipeline.ledger.exports import LEDGER_COLUMNS, write_sheet

        session = _session(state, request)
        _require(session.account.role != "admin", "系统管理员账号只管理账号")
        f = _filter(request, state.today())
        with state.snapshots.cursor() as cur:
            if f.unit:
                visible = reads.visible_units(session.account, cur, state.ledger()) if cur else []
                _require(visible is None or f.unit in visible)
            rows = reads.export_rows(cur, state.ledger(), session.account, f, list(LEDGER_COLUMNS)) if cur else []
        who = unit_name(f.unit) if f.unit else ("全区" if session.account.reads_all else
                                                unit_name(session.account.unit_code))  # fmt: skip
        name = f"隐患清单_{who}_{state.today():%Y%m%d}.xlsx"
        path = state.settings.staging_dir / "downloads" / f"{accounts.secrets.token_hex(8)}.xlsx"
        path.parent.mkdir(parents=True, exist_ok=True)
        with streamed_workbook(path, f"隐患清单 {who} {clock.as_of_label(state.today())}") as wb:
            write_sheet(wb, "隐患清单", list(LEDGER_COLUMNS.values()), rows)
        return FileResponse(path, headers={"Content-Disposition": f"attachment; filename*=UTF-8''{url_quote(name)}"},
                            background=_unlink_after(path))  # fmt: skip

    @app.get("/ledger/unit/{unit}.xlsx")
    def unit_workbook(request: Request, unit: str):
        """The ledger workbook of one responsible unit (output/ledger/责任单位/), for the accounts that see it."""
        session = _session(state, request)
        _require(session.account.role != "admin", "系统管理员账号只管理账号")
        _require(unit in units() and _sees_unit(state, session.account, unit), "无权查看其他单位的隐患台账")
        folder = state.settings.output / "ledger" / "责任单位"
        path = _regular_file(
            folder, folder / f"隐患台账_{unit}.xlsx", f"{unit_name(unit)}暂无隐患台账（尚无隐患或尚未发布）"
        )
        return _download(path, f"隐患台账_{unit_name(unit)}.xlsx")

    @app.get("/ledger/town/{town}.xlsx")
    def town_workbook(request: Request, town: str):
        """A town's ledger workbook (output/ledger/乡镇/): every unit's hazards in the town, so only for the accounts
        that see every unit (the reading roles and the government)."""
        session = _session(state, request)
        _require(session.account.role != "admin", "系统管理员账号只管理账号")
        _require(town in towns(), "没有这个乡镇")
        with state.snapshots.cursor() as cur:
            every = reads.visible_units(session.account, cur, state.ledger() if cur else "") is None
        _require(every, "无权查看乡镇隐患台账：其中有其他单位的隐患；请下载本单位的台账")
        folder = state.settings.output / "ledger" / "乡镇"
        name = f"隐患台账_{towns()[town]}.xlsx"
        return _download(_regular_file(folder, folder / name, f"{towns()[town]}暂无隐患台账"), name)

    @app.get("/hazards/{hazard_no}", response_class=HTMLResponse)
    def hazard_page(request: Request, hazard_no: str):
        session = _session(state, request)
        with state.snapshots.cursor() as cur:
            h = reads.hazard(cur, hazard_no, state.today()) if cur else None
            if h is None:
                raise HTTPException(404, NOT_FOUND_ZH.format(hazard_no))
            _require(reads.may_see(session.account, h))
            events = reads.history(cur, hazard_no)
        return _render_hazard(request, state, session, h, events)

    @app.post("/hazards/{hazard_no}/decision", response_class=HTMLResponse)
    async def decide(request: Request, hazard_no: str):
        """A supervisor's decision, written as the one-row feedback file the ledger applies (the pipeline stays
        the one writer); previewed like any upload, then confirmed."""
        session = _session(state, request)
        form = await _form(state, request, session)
        with state.snapshots.cursor() as cur:
            h = reads.hazard(cur, hazard_no, state.today()) if cur else None
        _require(h is not None and reads.may_decide(session.account, h),
                 "无权办理：只有该隐患的行业监管部门可以验收或审批延期")  # fmt: skip
        decision = str(form.get("decision", ""))
        _require(decision in DECISIONS, "未知的办理事项")
        _require(decision != "major" or str(form.get("note") or "").strip(), "认定为重大隐患须在说明中填写理由")
        row = _decision_row(h, decision, form, session.account, state.today())
        data = _feedback_csv([row])
        name = f"网页办理_{decision}_{hazard_no}_{clock.beijing_now():%H%M%S}.csv"
        return await _stage_and_preview(request, state, session, "feedback", f"{state.today():%Y-%m-%d}", name,
                                        _one_chunk(data))  # fmt: skip


def _render_hazard(request: Request, state: PortalState, session: Session, h: dict, events: list[dict],
                   status: int = 200, report_error: str | None = None, form: dict | None = None) -> HTMLResponse:  # fmt: skip
    """The hazard's page: its record, the forms the account may use (the responsible unit's report, the
    supervising department's decision, 督办), the photos reported with its events, and its history."""
    return state.render(request, "hazard.html", session, status=status, h=h, events=events, decisions=DECISIONS,
                        may_decide=reads.may_decide(session.account, h),
                        duban_actions=reads.duban_actions(session.account, h),
                        report_steps=reads.report_steps(session.account, h), steps=reads.REPORT_STEPS,
                        photos=reads.photos(events), report_error=report_error, form=form or {},
                        max_photo_mb=state.settings.max_photo_mb, max_photos=state.settings.max_photos,
                        five_in_place=_five_in_place(h))  # fmt: skip


def _five_in_place(h: dict) -> list[tuple[str, str]]:
    """五落实 as recorded in the ledger (责任、措施、资金、时限、预案), for the page."""
    funds = h.get("funds_wan")
    return [("责任人", h.get("person") or ""), ("整改措施", h.get("measures") or ""),
            ("整改资金", f"{funds:g} 万元" if isinstance(funds, (int, float)) else ""),
            ("计划完成时限", str(h.get("plan_finish") or "")), ("应急预案编号", h.get("plan_no") or "")]  # fmt: skip


REPORT_TEXT_FIELDS = ("measures", "person", "funds_wan", "plan_finish", "plan_no", "extend_to", "extend_reason",
                      "monitoring")  # fmt: skip


def _report_row(h: dict, step: str, form: dict, account: Account, today: dt.date) -> dict:
    """The one feedback row a report from the hazard page is (the same columns as the template, each value as
    typed: the preview checks them exactly as it checks an uploaded feedback file)."""
    target = reads.REPORT_STEPS[step][1] or h["status"]
    row = {"hazard_no": h["hazard_no"], "unit": account.unit_code, "status": target,
           "report_date": f"{today:%Y-%m-%d}"}  # fmt: skip
    for key in REPORT_TEXT_FIELDS:
        row[key] = form.get(key, "")
    if step == "extend" and not row["measures"]:
        row["measures"] = h.get("measures") or f"申请延期：{row['extend_reason']}"
    if step == "extend" and target == "管控中" and not row["monitoring"]:
        row["monitoring"] = h.get("monitoring") or ""  # the template asks 管控中 rows for it: the recorded one
    if step != "extend":
        row["extend_to"] = row["extend_reason"] = ""
    return row


def _report_routes(app: FastAPI, state: PortalState) -> None:
    settings = state.settings

    @app.post("/hazards/{hazard_no}/report", response_class=HTMLResponse)
    async def report(request: Request, hazard_no: str):
        """The responsible unit's report on one hazard (开始整改, 整改完成, 申请延期, 管控措施已落实, 转为管控) with its
        整改前/整改后 photos: the one-row feedback file the ledger applies, previewed like any upload, then
        confirmed; the photos, checked and stripped of metadata, land with it (pipeline/portal/evidence.py)."""
        session = _session(state, request)
        try:
            posted = await request.form(max_files=2 * settings.max_photos, max_fields=40)
        except StarletteHTTPException:
            raise HTTPException(400, f"一次最多上传{settings.max_photos}张照片，请减少后重试") from None
        if not accounts.csrf_ok(session.csrf_token, posted.get("csrf")):
            raise HTTPException(403, "页面已过期或请求来源不明（CSRF校验失败），请刷新页面后重试")
        with state.snapshots.cursor() as cur:
            h = reads.hazard(cur, hazard_no, state.today()) if cur else None
            _require(h is not None and reads.may_see(session.account, h))
            events = reads.history(cur, hazard_no)
        step = str(posted.get("step", ""))
        _require(h["responsible_unit"] == session.account.unit_code and session.account.can_upload,
                 f"无权报送：整改进展由责任单位{unit_name(h['responsible_unit'])}报送")  # fmt: skip
        _require(step in reads.report_steps(session.account, h),
                 f"该隐患当前为“{h['status']}”，不能报送“{reads.REPORT_STEPS.get(step, ('未知事项',))[0]}”")  # fmt: skip
        form = {k: str(posted.get(k) or "").strip() for k in REPORT_TEXT_FIELDS}
        files = [(label, f) for label, key in (("整改前", "before"), ("整改后", "after"))
                 for f in posted.getlist(key) if isinstance(f, UploadFile) and f.filename]  # fmt: skip
        photos, named = [], []
        try:
            if len(files) > settings.max_photos:
                raise evidence.PhotoRefused(f"一次最多上传{settings.max_photos}张照片，本次选了{len(files)}张")
            limit = settings.max_photo_mb << 20
            for label, f in files:
                data, suffix = evidence.clean(await f.read(limit + 1), f.filename, limit)
                photos.append((data, suffix))
                named.append(f"{label}:{evidence.sha256(data)}")
        except evidence.PhotoRefused as e:
            return _render_hazard(request, state, session, h, events, status=400, report_error=str(e), form=form)
        row = _report_row(h, step, form, session.account, state.today()) | {"photos": ";".join(named)}
        name = f"网页报送_{reads.REPORT_STEPS[step][0].split('（')[0]}_{hazard_no}_{_stamp()}.csv"
        return await _stage_and_preview(request, state, session, "feedback", f"{state.today():%Y-%m-%d}", name,
                                        _one_chunk(_feedback_csv([row])), photos)  # fmt: skip

    @app.get("/hazards/{hazard_no}/photos/{name}")
    def photo(request: Request, hazard_no: str, name: str):
        """A photo reported with one of the hazard's events (thumbnail, or the whole photo with ?full=1), for the
        accounts that may see the hazard; a photo of another hazard is never served through this one."""
        session = _session(state, request)
        sha = name.removesuffix(".jpg")
        with state.snapshots.cursor() as cur:
            h = reads.hazard(cur, hazard_no, state.today()) if cur else None
            _require(h is not None and reads.may_see(session.account, h))
            known = {p["sha"] for p in reads.photos(reads.history(cur, hazard_no))}
        source = evidence.find(settings.data_raw / evidence.EVIDENCE_FOLDER, sha) if sha in known else None
        if source is None:
            raise HTTPException(404, "没有这张照片")
        headers = {"Cache-Control": "private, max-age=86400"}
        if request.query_params.get("full") == "1":
            return FileResponse(source, media_type="image/jpeg" if source.suffix == ".jpg" else "image/png",
                                headers=headers)  # fmt: skip
        thumb = evidence.thumbnail(source, settings.portal_db.parent / "thumbnails")
        return FileResponse(thumb, media_type="image/jpeg", headers=headers)

    @app.post("/hazards/batch-decision", response_class=HTMLResponse)
    async def batch_decision(request: Request):
        """The supervising department accepts or rejects several hazards awaiting acceptance at once: ONE feedback
        file of one row per hazard (a rejection needs its reason), previewed, then confirmed."""
        session = _session(state, request)
        _require(session.account.role == "supervisor", "无权办理：只有行业监管部门可以验收")
        posted = await request.form(max_files=0, max_fields=PAGE_BATCH + 10)
        if not accounts.csrf_ok(session.csrf_token, posted.get("csrf")):
            raise HTTPException(403, "页面已过期或请求来源不明（CSRF校验失败），请刷新页面后重试")
        numbers = list(dict.fromkeys(str(n) for n in posted.getlist("hazard_no")))[:PAGE_BATCH]
        decision = str(posted.get("decision", ""))
        _require(decision in ("accept", "reject"), "请选择验收通过或验收不通过")
        _require(bool(numbers), "请先勾选要验收的隐患")
        note = str(posted.get("note") or "").strip()
        _require(decision == "accept" or bool(note), "验收不通过须填写理由（退回整改的原因）")
        with state.snapshots.cursor() as cur:
            allowed = reads.decidable(cur, state.ledger(), session.account, numbers) if cur else set()
            _require(set(numbers) <= allowed, "所选隐患中有不待验收或不归本部门验收的，请刷新列表后重新勾选")
            hazards = [reads.hazard(cur, n, state.today()) for n in numbers]
        extra = {"note": note, "assessment_no": str(posted.get("assessment_no") or "").strip(),
                 "expert": str(posted.get("expert") or "").strip()}  # fmt: skip
        rows = [_decision_row(h, decision, extra, session.account, state.today()) for h in hazards]
        name = f"网页批量验收_{'通过' if decision == 'accept' else '不通过'}{len(rows)}项_{_stamp()}.csv"
        return await _stage_and_preview(request, state, session, "feedback", f"{state.today():%Y-%m-%d}", name,
                                        _one_chunk(_feedback_csv(rows)))  # fmt: skip


PAGE_BATCH = 200  # at most one list page of hazards in one batch decision


def _stamp() -> str:
    """Beijing time to the millisecond, for the names of the files the pages write (two reports never collide)."""
    now = dt.datetime.now(clock.DISTRICT_TZ)
    return f"{now:%H%M%S}{now.microsecond // 1000:03d}"


def _duban_routes(app: FastAPI, state: PortalState) -> None:
    @app.post("/hazards/{hazard_no}/duban", response_class=HTMLResponse)
    async def duban_decision(request: Request, hazard_no: str):
        """The government's 挂牌督办 or 督办核销 from its account: the one-row feedback file the ledger applies,
        previewed like any upload, then confirmed (as a supervisor's decision is)."""
        session = _session(state, request)
        form = await _form(state, request, session)
        with state.snapshots.cursor() as cur:
            h = reads.hazard(cur, hazard_no, state.today()) if cur else None
        action = str(form.get("action", ""))
        _require(h is not None and action in reads.duban_actions(session.account, h),
                 "无权办理：挂牌督办和督办核销只由区人民政府（安委会办公室）办理")  # fmt: skip
        today = f"{state.today():%Y-%m-%d}"
        row = {"hazard_no": hazard_no, "unit": session.account.unit_code, "status": h["status"], "decision": action,
               "person": session.account.display_name, "report_date": today,
               "measures": str(form.get("requirement") or "").strip() or "同意核销",
               "notice_no": str(form.get("notice_no") or "").strip(),
               "notice_deadline": str(form.get("notice_deadline") or "").strip()}  # fmt: skip
        name = f"网页办理_{action}_{hazard_no}_{clock.beijing_now():%H%M%S}.csv"
        return await _stage_and_preview(request, state, session, "feedback", today, name,
                                        _one_chunk(_feedback_csv([row])))  # fmt: skip


def _decision_row(h: dict, decision: str, form, account: Account, today: dt.date) -> dict:
    values = dict(DECISIONS[decision][1])
    row = {"hazard_no": h["hazard_no"], "unit": account.unit_code, "person": account.display_name,
           "report_date": f"{today:%Y-%m-%d}", "measures": str(form.get("note") or DECISIONS[decision][0])}  # fmt: skip
    if "status" not in values:
        values["status"] = h["status"]  # an extension decision keeps the hazard's status
    else:
        row |= {"acceptor": account.display_name, "accept_date": f"{today:%Y-%m-%d}",
                "assessment_no": str(form.get("assessment_no", "")), "expert": str(form.get("expert", ""))}  # fmt: skip
    return row | values


def _feedback_csv(rows: list[dict]) -> bytes:
    """Rows as the feedback template's CSV (UTF-8 with BOM), each value exactly as typed: the file is the
    intake's input, not a file for people (what people read of it, receipts and ledgers, is neutralised
    where it is written; an apostrophe added here would be stored in the ledger as part of the text)."""
    import csv
    import io

    t = load_template("feedback")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([f.header for f in t.fields])
    for r in rows:
        w.writerow([r.get(f.key, "") for f in t.fields])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _unlink_after(path: Path):
    from starlette.background import BackgroundTask

    return BackgroundTask(path.unlink, missing_ok=True)


# --- leaders, templates, earthquakes -------------------------------------------------------------


QUAKE_FEEDBACK_ZH = (
    "各单位现场排查后，按“{kind}”模板（“模板”页下载）逐项填写，在本平台“上传”页选择类别“{kind}”和本次地震事件"
    "上传。每受理一批即生成一期续报；受理结果（退回的行及原因）见本单位首页和回执。"
)


def _quake_events(state: PortalState, account: Account) -> list[dict]:
    """Every declared event and every event with reports, newest first: its description, whether it is open, its
    report files, and the 排查清单 the account may open (its own unit's; a reading account every unit's)."""
    from pipeline.quake.event import EventError, read_event
    from pipeline.registries.events import closed_at, declared_events, events_dir

    settings = state.settings
    reports = dict(reads.quake_reports(settings.output / "quake"))
    declared = declared_events(settings.data_raw)
    ids = sorted(set(reports) | set(declared), reverse=True)
    visible: set[str] | None = None
    if not account.reads_all:
        with state.snapshots.cursor() as cur:
            seen = reads.visible_units(account, cur, state.ledger() if cur is not None else "")
        visible = None if seen is None else set(seen)
    out = []
    for eid in ids:
        path = events_dir(settings.data_raw) / f"{eid}.yaml"
        try:
            describe = read_event(path).describe_zh() if path.is_file() else ""
        except EventError:
            describe = ""
        folder = settings.output / "quake" / eid / "排查清单"
        units_with = sorted(p.name.removeprefix("排查清单_").removesuffix(".xlsx")
                            for p in folder.glob("排查清单_*.xlsx")) if folder.is_dir() else []  # fmt: skip
        mine = [u for u in units_with if visible is None or u in visible]
        files = reports.get(eid, [])
        out.append({"id": eid, "describe": describe, "files": files, "open": eid in declared
                    and closed_at(settings.data_raw, eid) is None, "first_report": "首报.pdf" in files,
                    "checklists": [(u, unit_name(u)) for u in mine]})  # fmt: skip
    return out


def _sees_unit(state: PortalState, account: Account, unit: str) -> bool:
    """Whether the account may see one unit's figures: its own, a unit whose hazards it supervises, or all."""
    if account.reads_all or unit == account.unit_code:
        return True
    with state.snapshots.cursor() as cur:
        if cur is None:
            return False
        visible = reads.visible_units(account, cur, state.ledger())
        return visible is None or unit in visible


def _reading_routes(app: FastAPI, state: PortalState) -> None:
    settings = state.settings

    @app.get("/leaders", response_class=HTMLResponse)
    def leaders(request: Request, town: str = "", unit: str = ""):
        session = _session(state, request)
        town = town if town in towns() else ""
        unit = unit if unit in units() else ""
        _require(not unit or _sees_unit(state, session.account, unit),
                 "无权查看其他单位的看板：单位视图只对本单位、其监管单位、领导和分析人员开放")  # fmt: skip
        head, by_town, by_unit = state.snapshots.cached(("leaders", state.today(), town, unit),
                                                        lambda: _leaders(state, town, unit))  # fmt: skip
        shelters = state.snapshots.cached(("leader_shelters", town), lambda: _shelters(state, town))
        charts = [(n, t) for n, t in CHARTS if (settings.output / "charts" / f"{n}.png").is_file()]
        figures = _figures(state, town, unit)
        months = _last_month(state)  # each town's found and closed last month, beside this month's
        by_town = [dict(r, 上月=months.get(r["乡镇代码"], (0, 0))) for r in by_town]
        return state.render(request, "leaders.html", session, head=head, by_town=reads.worst_first(by_town),
                            by_unit=by_unit, charts=charts, town=town, unit=unit, towns=towns(), figures=figures,
                            scope=_scope(town, unit), shelters=shelters,
                            briefing=(settings.output / "briefing" / "简报.pdf").is_file())  # fmt: skip

    def _shelters(state: PortalState, town: str) -> list[dict]:
        with state.snapshots.cursor() as cur:
            return reads.shelter_capacity(cur, town) if cur else []

    @app.get("/leaders/figure/{key}", response_class=HTMLResponse)
    def leader_figure(request: Request, key: str, town: str = "", unit: str = ""):
        """One of the leaders' figures on its own page, full width (the phone's 'tap to enlarge')."""
        session = _session(state, request)
        town = town if town in towns() else ""
        unit = unit if unit in units() else ""
        _require(not unit or _sees_unit(state, session.account, unit),
                 "无权查看其他单位的看板：单位视图只对本单位、其监管单位、领导和分析人员开放")  # fmt: skip
        found = [f for f in _figures(state, town, unit) if f.key == key]
        if not found:
            raise HTTPException(404, "没有这个图表")
        return state.render(request, "leader_figure.html", session, f=found[0], town=town, unit=unit,
                            scope=_scope(town, unit))  # fmt: skip

    def _last_month(state: PortalState) -> dict[str, tuple[int, int]]:
        def compute() -> dict[str, tuple[int, int]]:
            with state.snapshots.cursor() as cur:
                return reads.last_month_by_town(cur, state.ledger(), state.today()) if cur else {}

        return state.snapshots.cached(("leader_last_month", state.today()), compute)

    def _figures(state: PortalState, town: str, unit: str) -> list[reads.Figure]:
        """The leaders' figures for the choice, computed once per publication (Snapshots.cached)."""

        def compute() -> list[reads.Figure]:
            with state.snapshots.cursor() as cur:
                return reads.leader_figures(cur, state.ledger(), state.today(), town, unit) if cur else []

        return state.snapshots.cached(("leader_figures", state.today(), town, unit), compute)

    def _scope(town: str, unit: str) -> str:
        return (
            " · ".join(x for x in (towns().get(town, "") if town else "", unit_name(unit) if unit else "") if x)
            or "全区"
        )

    def _leaders(state: PortalState, town: str, unit: str) -> tuple:
        with state.snapshots.cursor() as cur:
            if cur is None:
                return None, [], []
            ledger, today = state.ledger(), state.today()
            return (reads.headline(cur, ledger, town, unit), reads.summaries(cur, ledger, today, "town"),
                    reads.summaries(cur, ledger, today, "unit"))  # fmt: skip

    @app.get("/duban", response_class=HTMLResponse)
    def duban_page(request: Request):
        """督办建议清单 and the notices issued: for the government (it decides 挂牌督办) and the read-all accounts."""
        session = _session(state, request)
        _require(reads.may_see_duban(session.account),
                 "无权查看：督办建议清单供区人民政府（安委会办公室）决定挂牌督办，只对其账号和领导、分析人员开放")  # fmt: skip
        today = state.today()

        def read() -> tuple[list[dict], list[dict]]:
            with state.snapshots.cursor() as cur:
                if cur is None:
                    return [], []
                return reads.duban_proposals(cur, today), reads.duban_notices(cur, today)

        proposals, notices = state.snapshots.cached(("duban", today), read)
        return state.render(request, "duban.html", session, proposals=proposals, notices=notices,
                            rules=duban.proposal_rules(), issuers=duban.issuers())  # fmt: skip

    @app.get("/charts/{name}.png")
    def chart(request: Request, name: str):
        _session(state, request)
        _require(name in dict(CHARTS), "没有这张图")
        path = _regular_file(settings.output / "charts", settings.output / "charts" / f"{name}.png", "图表尚未生成")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})

    @app.get("/briefing.pdf")
    def briefing(request: Request):
        _session(state, request)
        path = _regular_file(settings.output / "briefing", settings.output / "briefing" / "简报.pdf", "简报尚未生成")
        return FileResponse(path, media_type="application/pdf",
                            headers={"Content-Disposition": f"inline; filename*=UTF-8''{url_quote('简报.pdf')}"})  # fmt: skip

    @app.get("/templates", response_class=HTMLResponse)
    def template_list(request: Request):
        session = _session(state, request)
        kinds = [(load_template(k), [guide_row(f) for f in load_template(k).fields]) for k in KIND_ZH]
        return state.render(request, "templates.html", session, kinds=kinds, stem=template_stem)

    @app.get("/templates/{kind}.{suffix}")
    def template_file(request: Request, kind: str, suffix: str):
        _session(state, request)
        _require(kind in KIND_ZH and suffix in ("xlsx", "csv"), "没有这个模板")
        name = f"{template_stem(load_template(kind))}.{suffix}"
        path = settings.output / "templates" / name
        if not path.is_file():
            from pipeline.intake.blank_templates import write_blank_templates

            write_blank_templates(settings.output / "templates")
        return _download(_regular_file(settings.output / "templates", path, "没有这个模板"), name)

    @app.get("/quake", response_class=HTMLResponse)
    def quake(request: Request):
        session = _session(state, request)
        _require(session.account.role in ("duty", "analyst", "supervisor", "clerk"), "系统管理员账号只管理账号")
        declared = request.query_params.get("declared", "")
        events = _quake_events(state, session.account)
        just = next((e for e in events if e["id"] == declared), None)
        return state.render(request, "quake.html", session, events=events, error=None, form={}, declared=just,
                            feedback_zh=QUAKE_FEEDBACK_ZH.format(kind=KIND_ZH["quake_feedback"]))  # fmt: skip

    @app.post("/quake", response_class=HTMLResponse)
    async def declare(request: Request):
        session = _session(state, request)
        _require(session.account.role == "duty", "只有值班人员可以登记地震事件")
        form = await _form(state, request, session)
        from pipeline.quake.event import EventError, declare, event_from

        raw = {k: str(form.get(k, "")).strip() for k in ("time", "lon", "lat", "depth", "mag", "strike", "place")}
        keys = {"depth": "depth_km", "mag": "magnitude"}  # the form's short names, the event file's keys
        try:
            event = event_from({keys.get(k, k): v for k, v in raw.items() if v})
        except EventError as e:  # checked in full before anything is written: a refused event leaves no file
            events = _quake_events(state, session.account)
            return state.render(request, "quake.html", session, status=400, events=events, error=str(e), form=raw,
                                declared=None, feedback_zh=QUAKE_FEEDBACK_ZH.format(kind=KIND_ZH["quake_feedback"]))  # fmt: skip
        path = declare(event, settings.data_raw)
        uploads.record_landed(state.db(), session.account, EVENTS_FOLDER, path, path.relative_to(settings.data_raw),
                              "地震事件登记")  # fmt: skip
        raise Redirect(f"/quake?declared={url_quote(event.event_id)}")

    @app.get("/quake/{event_id}/checklist")
    def checklist(request: Request, event_id: str, unit: str = ""):
        """The 排查清单 of the account's unit for one event (a reading account may ask for any unit's)."""
        session = _session(state, request)
        _require(session.account.role != "admin", "系统管理员账号只管理账号")
        _require(EVENT_ID_PATTERN.fullmatch(event_id) is not None, "没有这个地震事件")
        unit = unit or session.account.unit_code
        _require(unit in units() and _sees_unit(state, session.account, unit), "无权查看其他单位的排查清单")
        folder = settings.output / "quake" / event_id / "排查清单"
        path = _regular_file(settings.output / "quake", folder / f"排查清单_{unit}.xlsx",
                             f"{unit_name(unit)}在本次地震中没有须排查的对象（或排查清单尚未生成）")  # fmt: skip
        return _download(path, f"排查清单_{unit_name(unit)}_{event_id}.xlsx")

    @app.get("/quake/{event_id}/{name}")
    def quake_file(request: Request, event_id: str, name: str):
        session = _session(state, request)
        _require(session.account.role != "admin", "系统管理员账号只管理账号")
        _require(EVENT_ID_PATTERN.fullmatch(event_id) is not None and re.fullmatch(r"[^/\\.][^/\\]*", name) is not None,
                 "没有这个文件")  # fmt: skip
        path = _regular_file(settings.output / "quake", settings.output / "quake" / event_id / name)
        if path.suffix in (".txt", ".pdf", ".png"):
            media = {".txt": "text/plain; charset=utf-8", ".pdf": "application/pdf", ".png": "image/png"}[path.suffix]
            return FileResponse(path, media_type=media)
        return _download(path)


# --- administration ---------------------------------------------------------------------------------


ADMIN_DONE_ZH = {
    "created": "已创建账号 {a.username}（{a.display_name}，{role}，{unit}）",
    "password": "账号 {a.username}（{a.display_name}）：已重设密码，本人下次登录时须先修改密码",
    "done": "账号 {a.username}（{a.display_name}）：已完成",
}


def _admin_routes(app: FastAPI, state: PortalState) -> None:
    def admin(request: Request) -> Session:
        session = _session(state, request)
        _require(session.account.role == "admin", "只有系统管理员可以管理账号")
        return session

    def page(
        request: Request, session: Session, status: int = 200, error: str | None = None, message: str | None = None
    ):
        q = request.query_params.get("q", "").strip()[:64] if request.method == "GET" else ""
        failed = request.query_params.get("failed") == "1" if request.method == "GET" else False
        return state.render(request, "admin.html", session, status=status, rows=accounts.search_accounts(state.db(), q),
                            units=units(), error=error, message=message, q=q, failed=failed,
                            audit=accounts.auth_events(state.db(), failed_only=failed))  # fmt: skip

    def done(what: str, username: str) -> Redirect:
        """POST → redirect → GET: a refresh of the page shows the result and never repeats the change (the
        message is made here from a fixed list, never taken from the address)."""
        return Redirect("/admin/accounts?" + urlencode({"done": what, "user": username}))

    def done_message(request: Request) -> str | None:
        what, username = request.query_params.get("done", ""), request.query_params.get("user", "")
        a = accounts.get_account(state.db(), username) if what in ADMIN_DONE_ZH else None
        return ADMIN_DONE_ZH[what].format(a=a, role=a.role_zh, unit=unit_name(a.unit_code)) if a else None

    @app.get("/admin/accounts", response_class=HTMLResponse)
    def account_list(request: Request):
        session = admin(request)
        return page(request, session, message=done_message(request))

    @app.post("/admin/accounts", response_class=HTMLResponse)
    async def create(request: Request):
        session = admin(request)
        form = await _form(state, request, session)
        try:
            a = accounts.create_account(state.db(), str(form.get("username", "")).strip(),
                                        str(form.get("display_name", "")).strip(), str(form.get("unit_code", "")),
                                        str(form.get("role", "")), str(form.get("password", "")),
                                        session.account.username)  # fmt: skip
        except AccountError as e:
            return page(request, session, 400, error=str(e))
        raise done("created", a.username)

    @app.post("/admin/accounts/{username}/{action}", response_class=HTMLResponse)
    async def act(request: Request, username: str, action: str):
        session = admin(request)
        form = await _form(state, request, session)
        _require(accounts.get_account(state.db(), username) is not None, "没有这个账号")
        by = session.account.username
        try:
            if action == "unlock":
                accounts.unlock(state.db(), username, by)
            elif action == "password":
                accounts.set_password(state.db(), username, str(form.get("password", "")), by)
            elif action == "role":
                _require(username != by, "不能修改自己的角色")
                accounts.change_role(
                    state.db(), username, str(form.get("role", "")), str(form.get("unit_code", "")), by
                )
            elif action in ("disable", "enable"):
                _require(username != by, "不能停用自己的账号")
                accounts.set_disabled(state.db(), username, action == "disable", by)
            else:
                raise HTTPException(404, "未知操作")
        except AccountError as e:
            return page(request, session, 400, error=str(e))
        raise done("password" if action == "password" else "done", username)
