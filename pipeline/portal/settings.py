"""The portal's settings, from the environment (read once when the app is made)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.platform import paths
from pipeline.registries import uploads as upload_audit


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_upload_mb: int = 200  # a bigger file is refused before it is read whole
    idle_minutes: int = 60  # a session ends after this long without a request …
    max_session_hours: int = 12  # … and this long after the log-in, whatever happens
    lock_after: int = 5  # wrong passwords in a row
    lock_minutes: int = 30
    preview_workers: int = 2  # processes that run previews (validation is CPU-bound)
    preview_seconds: int = 300  # a preview running longer is stopped (its worker replaced)
    preview_rows_shown: int = 500  # refused rows listed on the page (the count is always whole)
    preview_memory_mb: int = 2048  # a preview worker's resident memory; a file that needs more is refused as too large
    page_seconds: int = 60  # a page not answered by then gets an error page and a log line (POST: + preview_seconds)
    max_photo_mb: int = 8  # each 整改前/整改后 photo sent with a report from the hazard page …
    max_photos: int = 6  # … and at most this many photos with one report
    secure_cookie: bool = False  # True behind HTTPS
    run_on_confirm: bool = False  # start the pipeline run at 确认提交 (runner.py); from_env: on unless set to 0
    data_raw: Path = field(default_factory=paths.data_raw_dir)
    output: Path = field(default_factory=paths.output_dir)
    database: Path = field(default_factory=paths.database_path)
    published: Path = field(default_factory=paths.published_database_path)
    portal_db: Path = field(default_factory=upload_audit.database_path)

    @property
    def staging_dir(self) -> Path:
        """Uploads waiting for the clerk's confirmation (never under data_raw/)."""
        return self.portal_db.parent / "staging"

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            host=os.environ.get("LITONG_PORTAL_HOST", "127.0.0.1"),
            port=_int("LITONG_PORTAL_PORT", 8080),
            max_upload_mb=_int("LITONG_PORTAL_MAX_UPLOAD_MB", 200),
            idle_minutes=_int("LITONG_PORTAL_IDLE_MINUTES", 60),
            max_session_hours=_int("LITONG_PORTAL_SESSION_HOURS", 12),
            lock_after=_int("LITONG_PORTAL_LOCK_AFTER", 5),
            lock_minutes=_int("LITONG_PORTAL_LOCK_MINUTES", 30),
            preview_workers=_int("LITONG_PORTAL_PREVIEW_WORKERS", 2),
            preview_seconds=_int("LITONG_PORTAL_PREVIEW_SECONDS", 300),
            preview_memory_mb=_int("LITONG_PORTAL_PREVIEW_MEMORY_MB", 2048),
            page_seconds=_int("LITONG_PORTAL_PAGE_SECONDS", 60),
            max_photo_mb=_int("LITONG_PORTAL_MAX_PHOTO_MB", 8),
            max_photos=_int("LITONG_PORTAL_MAX_PHOTOS", 6),
            secure_cookie=os.environ.get("LITONG_PORTAL_SECURE_COOKIE", "") in ("1", "true", "yes"),
            run_on_confirm=os.environ.get("LITONG_PORTAL_RUN_ON_CONFIRM", "1") not in ("0", "false", "no"),
        )
