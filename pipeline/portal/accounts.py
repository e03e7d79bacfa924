"""Accounts, roles, sessions and the lock-out of the web portal.

Every account is one person tied to one unit of the registry; the audit names the person. Passwords are
kept only as argon2id hashes (argon2-cffi). A session is a random token in an HttpOnly cookie whose
SHA-256 is stored (a stolen database holds no usable token), with an idle and an absolute expiry and
its own CSRF token. Five wrong passwords in a row lock the account for `lock_minutes` (an administrator
may unlock it earlier). Everything is in the portal's SQLite file beside the upload audit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import sqlite3
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pipeline.platform.clock import beijing_now
from pipeline.registries.units import units

ROLES = {
    "clerk": "单位填报员",
    "supervisor": "监管单位",
    "duty": "值班人员",
    "analyst": "分析人员",
    "admin": "系统管理员",
}
UPLOAD_ROLES = ("clerk", "supervisor")  # the duty officer declares earthquakes and uploads nothing else
READ_ALL_ROLES = ("analyst", "duty", "admin")
MIN_PASSWORD = 10
SEEN_EVERY_SECONDS = 60  # a session's last use is written at most this often (a write per page would cost)

ACCOUNTS_DDL = [
    """CREATE TABLE IF NOT EXISTS accounts (
        username TEXT PRIMARY KEY, display_name TEXT NOT NULL, unit_code TEXT NOT NULL, role TEXT NOT NULL,
        password_hash TEXT NOT NULL, created_at TEXT NOT NULL, created_by TEXT,
        disabled INTEGER NOT NULL DEFAULT 0, failed_logins INTEGER NOT NULL DEFAULT 0, locked_until TEXT,
        last_login TEXT)""",
    """CREATE TABLE IF NOT EXISTS sessions (
        token_sha256 TEXT PRIMARY KEY, username TEXT NOT NULL, csrf_token TEXT NOT NULL,
        created_at TEXT NOT NULL, last_seen TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS auth_events (
        at TEXT NOT NULL, username TEXT, event TEXT NOT NULL, detail TEXT, client TEXT)""",
]

_hasher = PasswordHasher()  # argon2id with the library's recommended parameters


class AccountError(Exception):
    """A refused account operation (Chinese message for the person)."""


@dataclass(frozen=True)
class Account:
    username: str
    display_name: str
    unit_code: str
    role: str
    disabled: bool = False
    locked_until: str | None = None
    failed_logins: int = 0
    last_login: str | None = None
    must_change: bool = False  # the password was set by an administrator: change it before anything else

    @property
    def role_zh(self) -> str:
        return ROLES.get(self.role, self.role)

    @property
    def can_upload(self) -> bool:
        return self.role in UPLOAD_ROLES

    @property
    def reads_all(self) -> bool:
        return self.role in READ_ALL_ROLES


@dataclass(frozen=True)
class Session:
    account: Account
    csrf_token: str


def now() -> dt.datetime:
    return beijing_now()


def ensure_tables(con: sqlite3.Connection) -> None:
    for ddl in ACCOUNTS_DDL:
        con.execute(ddl)
    columns = {r[1] for r in con.execute("PRAGMA table_info(accounts)")}
    if "must_change" not in columns:  # issue 27: a password set by an administrator is changed at next log-in
        con.execute("ALTER TABLE accounts ADD COLUMN must_change INTEGER NOT NULL DEFAULT 0")


def _account(row: sqlite3.Row) -> Account:
    return Account(row["username"], row["display_name"], row["unit_code"], row["role"], bool(row["disabled"]),
                   row["locked_until"], row["failed_logins"], row["last_login"],
                   bool(row["must_change"]) if "must_change" in row.keys() else False)  # fmt: skip


def check_new_account(username: str, unit_code: str, role: str, password: str) -> None:
    if not username or len(username) > 64 or not all(c.isalnum() or c in "._-" for c in username):
        raise AccountError("用户名只能由字母、数字、点、下划线和短横线组成（不超过64个字符）")
    check_role_and_unit(role, unit_code)
    check_password(password)


def check_role_and_unit(role: str, unit_code: str) -> None:
    if role not in ROLES:
        raise AccountError(f"角色“{role}”不存在（可用：{'、'.join(ROLES.values())}）")
    if unit_code not in units():
        raise AccountError(f"单位代码“{unit_code}”不在责任单位名录中")


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"密码至少{MIN_PASSWORD}个字符")
    if password.isdigit() or password.isalpha():
        raise AccountError("密码须同时包含字母和数字（或符号）")


def create_account(con: sqlite3.Connection, username: str, display_name: str, unit_code: str, role: str,
                   password: str, created_by: str | None) -> Account:  # fmt: skip
    check_new_account(username, unit_code, role, password)
    try:
        con.execute(
            "INSERT INTO accounts (username, display_name, unit_code, role, password_hash, created_at, created_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                username,
                display_name or username,
                unit_code,
                role,
                _hasher.hash(password),
                now().isoformat(),
                created_by,
            ],
        )
    except sqlite3.IntegrityError as e:
        raise AccountError(f"用户名“{username}”已存在") from e
    log(con, username, "created", f"由 {created_by or '命令行'} 创建，角色 {role}，单位 {unit_code}")
    return get_account(con, username)


def get_account(con: sqlite3.Connection, username: str) -> Account | None:
    row = con.execute("SELECT * FROM accounts WHERE username = ?", [username]).fetchone()
    return _account(row) if row else None


def list_accounts(con: sqlite3.Connection) -> list[Account]:
    return [_account(r) for r in con.execute("SELECT * FROM accounts ORDER BY unit_code, username")]


def has_admin(con: sqlite3.Connection) -> bool:
    return con.execute("SELECT 1 FROM accounts WHERE role = 'admin' AND NOT disabled").fetchone() is not None


def log(con: sqlite3.Connection, username: str | None, event: str, detail: str = "", client: str = "") -> None:
    con.execute("INSERT INTO auth_events VALUES (?, ?, ?, ?, ?)", [now().isoformat(), username, event, detail, client])


def authenticate(con: sqlite3.Connection, username: str, password: str, lock_after: int, lock_minutes: int,
                 client: str = "") -> Account:  # fmt: skip
    """The account, or AccountError with the message to show. A wrong password counts towards the lock-out;
    the message never says whether the user name exists."""
    wrong = AccountError("用户名或密码错误")
    row = con.execute("SELECT * FROM accounts WHERE username = ?", [username]).fetchone()
    if row is None:
        _hasher.hash(password)  # the same time as a real check: the answer does not tell names apart
        log(con, username, "login_unknown", client=client)
        raise wrong
    account = _account(row)
    if account.disabled:
        log(con, username, "login_disabled", client=client)
        raise AccountError("账号已停用，请联系系统管理员")
    if account.locked_until and dt.datetime.fromisoformat(account.locked_until) > now():
        log(con, username, "login_locked", client=client)
        raise AccountError(
            f"连续输错密码{lock_after}次，账号已锁定至{account.locked_until[11:16]}，请稍后再试或联系系统管理员"
        )
    try:
        _hasher.verify(row["password_hash"], password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        failed = account.failed_logins + 1
        locked = (now() + dt.timedelta(minutes=lock_minutes)).isoformat() if failed >= lock_after else None
        con.execute("UPDATE accounts SET failed_logins = ?, locked_until = ? WHERE username = ?",
                    [0 if locked else failed, locked, username])  # fmt: skip
        log(con, username, "login_failed" if not locked else "locked", f"第{failed}次", client)
        if locked:
            raise AccountError(
                f"连续输错密码{lock_after}次，账号已锁定{lock_minutes}分钟，请稍后再试或联系系统管理员"
            ) from None
        raise wrong from None
    con.execute("UPDATE accounts SET failed_logins = 0, locked_until = NULL, last_login = ? WHERE username = ?",
                [now().isoformat(), username])  # fmt: skip
    if _hasher.check_needs_rehash(row["password_hash"]):
        con.execute("UPDATE accounts SET password_hash = ? WHERE username = ?", [_hasher.hash(password), username])
    log(con, username, "login", client=client)
    return get_account(con, username)


def set_password(con: sqlite3.Connection, username: str, password: str, by: str) -> None:
    """A new password; set by anyone but the account's person (an administrator's reset), it must be changed
    at the next log-in (must_change), since the administrator knows it."""
    check_password(password)
    con.execute("UPDATE accounts SET password_hash = ?, failed_logins = 0, locked_until = NULL, must_change = ? "
                "WHERE username = ?", [_hasher.hash(password), int(by != username), username])  # fmt: skip
    con.execute("DELETE FROM sessions WHERE username = ?", [username])  # every old session ends
    log(con, username, "password_set", f"由 {by}")


AUTH_EVENTS_ZH = {"login": "登录成功", "login_failed": "密码错误", "locked": "密码错误，账号锁定",
                  "login_locked": "锁定期间尝试登录", "login_unknown": "不存在的用户名", "login_disabled": "已停用账号尝试登录",
                  "password_set": "设置密码", "created": "创建账号", "unlocked": "解锁", "disabled": "停用",
                  "enabled": "启用", "role_changed": "变更角色或单位"}  # fmt: skip
FAILED_EVENTS = ("login_failed", "locked", "login_locked", "login_unknown", "login_disabled")


def search_accounts(con: sqlite3.Connection, text: str) -> list[Account]:
    """Accounts whose user name, person's name or unit (code or name) contains `text` (all when empty)."""
    text = text.strip().lower()
    rows = list_accounts(con)
    if not text:
        return rows
    names = {c: u.name for c, u in units().items()}
    return [a for a in rows if any(text in v.lower() for v in (a.username, a.display_name, a.unit_code,
                                                                names.get(a.unit_code, "")))]  # fmt: skip


def auth_events(con: sqlite3.Connection, failed_only: bool = False, limit: int = 50) -> list[dict]:
    """The last log-ins and account changes (or only the failed attempts), newest first."""
    sql = "SELECT at, username, event, detail, client FROM auth_events"
    params: list = []
    if failed_only:
        sql += f" WHERE event IN ({', '.join('?' for _ in FAILED_EVENTS)})"
        params = list(FAILED_EVENTS)
    rows = con.execute(sql + " ORDER BY at DESC, rowid DESC LIMIT ?", [*params, limit]).fetchall()
    return [{"at": r[0], "username": r[1], "event": AUTH_EVENTS_ZH.get(r[2], r[2]), "detail": r[3] or "",
             "client": r[4] or ""} for r in rows]  # fmt: skip


def change_role(con: sqlite3.Connection, username: str, role: str, unit_code: str, by: str) -> None:
    """A new role or unit for a person (a transfer): every session of the account ends."""
    check_role_and_unit(role, unit_code)
    con.execute("UPDATE accounts SET role = ?, unit_code = ? WHERE username = ?", [role, unit_code, username])
    con.execute("DELETE FROM sessions WHERE username = ?", [username])
    log(con, username, "role_changed", f"由 {by} 改为 {role}，单位 {unit_code}")


def unlock(con: sqlite3.Connection, username: str, by: str) -> None:
    con.execute("UPDATE accounts SET failed_logins = 0, locked_until = NULL WHERE username = ?", [username])
    log(con, username, "unlocked", f"由 {by}")


def set_disabled(con: sqlite3.Connection, username: str, disabled: bool, by: str) -> None:
    con.execute("UPDATE accounts SET disabled = ? WHERE username = ?", [int(disabled), username])
    if disabled:
        con.execute("DELETE FROM sessions WHERE username = ?", [username])
    log(con, username, "disabled" if disabled else "enabled", f"由 {by}")


# --- sessions ---------------------------------------------------------------------------


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(con: sqlite3.Connection, username: str) -> str:
    """A new session's cookie token (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    stamp = now().isoformat()
    con.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                [_token_key(token), username, secrets.token_urlsafe(32), stamp, stamp])  # fmt: skip
    return token


def session_for(con: sqlite3.Connection, token: str | None, idle_minutes: int, max_hours: int) -> Session | None:
    """The live session of a cookie token (its last use moved to now), or None when unknown or expired."""
    if not token:
        return None
    key = _token_key(token)
    row = con.execute(
        "SELECT s.csrf_token, s.created_at, s.last_seen, a.* FROM sessions s JOIN accounts a USING (username) "
        "WHERE s.token_sha256 = ?",
        [key],
    ).fetchone()
    if row is None:
        return None
    t = now()
    idle_ok = dt.datetime.fromisoformat(row["last_seen"]) + dt.timedelta(minutes=idle_minutes) > t
    age_ok = dt.datetime.fromisoformat(row["created_at"]) + dt.timedelta(hours=max_hours) > t
    if not (idle_ok and age_ok) or row["disabled"]:
        con.execute("DELETE FROM sessions WHERE token_sha256 = ?", [key])
        return None
    if dt.datetime.fromisoformat(row["last_seen"]) + dt.timedelta(seconds=SEEN_EVERY_SECONDS) <= t:
        con.execute("UPDATE sessions SET last_seen = ? WHERE token_sha256 = ?", [t.isoformat(), key])
    return Session(_account(row), row["csrf_token"])


def end_session(con: sqlite3.Connection, token: str | None) -> None:
    if token:
        con.execute("DELETE FROM sessions WHERE token_sha256 = ?", [_token_key(token)])


def csrf_ok(expected: str, given: object) -> bool:
    """Whether the posted token is the expected one (compared as bytes: any text a browser sends, even
    non-ASCII, is a wrong token, never an error)."""
    if not isinstance(given, str) or not given or not expected:
        return False
    return secrets.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass"))
