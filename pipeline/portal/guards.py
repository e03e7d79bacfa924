"""The portal's outer guards (plain ASGI middleware): a bounded request body, a bounded time to answer.

Both answer themselves, in Chinese, without going through the pages' templates: a page that is stuck may be
stuck in what every template reads (the snapshot), and a body past the bound must never reach a route.
"""

from __future__ import annotations

import asyncio
import html
import logging

log = logging.getLogger("pipeline.portal")


class BodyTooLarge(Exception):
    """Raised by BodyLimit's receive when the body passes the bound; answered by BodyLimit itself (413)."""


def too_large_zh(limit_mb: int) -> str:
    return f"文件超过{limit_mb}MB上限，请拆分为几个较小的文件（例如按乡镇）后上传"


def _contains(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether `exc` is, holds (an ExceptionGroup from a task group) or was raised from a `kind`."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, kind):
            return True
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        stack.extend((e.__cause__, e.__context__))
    return False


async def _answer(send, status: int, message: str) -> None:
    body = (
        "<!doctype html><html lang=zh-CN><meta charset=utf-8><title>利通区地震风险隐患排查平台</title>"
        f'<p class="error" id="error">{html.escape(message)}</p><p><a href="/">返回首页</a></p>'
    ).encode()
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store"), (b"connection", b"close")]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse a request body past the bound before it is read whole (413), announced or streamed (chunked).

    `limit_mb` is the upload bound people are told; the body may be `slack` bytes more (the form's other fields)."""

    def __init__(self, app, limit_mb: int, slack: int = 1 << 20):
        self.app, self.limit_mb, self.max_bytes = app, limit_mb, limit_mb * (1 << 20) + slack

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _answer(send, 413, too_large_zh(self.limit_mb))
        seen, started = 0, False

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except Exception as e:  # the form parser's task group hands it on inside an ExceptionGroup
            if not _contains(e, BodyTooLarge) or started:
                raise
            await _answer(send, 413, too_large_zh(self.limit_mb))


class PageTimeout:
    """A request that has not started its answer within `seconds` (`post_seconds` for a POST: an upload waits
    for its preview, bounded on its own) is answered with an error page and logged, so a stuck page is never
    silent. The clock starts once the request's body is in (a large upload over a slow line is not the page's
    time). The stuck work is left to finish in its thread (a thread cannot be stopped) and its answer dropped.
    Once an answer has started (a download), it is never cut."""

    def __init__(self, app, seconds: float, post_seconds: float):
        self.app, self.seconds, self.post_seconds = app, seconds, post_seconds
        self._abandoned: set[asyncio.Task] = set()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, asked, body_in = asyncio.Event(), asyncio.Event(), asyncio.Event()
        timed_out = False
        if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            asked.set()
            body_in.set()

        async def watched_receive():
            asked.set()
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_in.set()
            return message

        async def guarded(message):
            if timed_out:
                return  # the person already has the error page
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        task = asyncio.ensure_future(self.app(scope, watched_receive, guarded))
        bound = self.post_seconds if scope.get("method") == "POST" else self.seconds
        await _first(task, started, asked, timeout=bound)  # a page stuck before it reads the body counts too
        if asked.is_set() and not body_in.is_set():
            await _first(task, started, body_in)  # the body's time is the sender's, unbounded here
        if body_in.is_set() and not (task.done() or started.is_set()):
            await _first(task, started, timeout=bound)
        if task.done() or started.is_set():
            return await task
        timed_out = True
        log.error("页面超时：%s %s 在 %s 秒内未能应答（已返回错误页）", scope.get("method"), scope.get("path"), bound)
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget)
        await _answer(
            send, 503, f"页面在{bound:g}秒内未能完成，已记录。请稍后重试；如反复出现，请联系区应急管理局（地震局）"
        )

    def _forget(self, task: asyncio.Task) -> None:
        self._abandoned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("超时后结束的页面出错：%r", task.exception())


async def _first(task: asyncio.Task, *events: asyncio.Event, timeout: float | None = None) -> None:
    """Wait until `task` ends or any of `events` is set, at most `timeout` seconds."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait({task, *waiters}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
