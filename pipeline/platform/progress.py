"""Progress of a run at the command line: one line per stage as it starts and ends, the stages'
own INFO messages, warnings and failed checks. A Dagster logger, so the UI is unaffected: the CLI
turns it on in the run config instead of Dagster's DEBUG event stream."""

import logging
import sys
import time

import dagster as dg

EventType = dg.DagsterEventType


class ProgressHandler(logging.Handler):
    def __init__(self, steps: int, stream=None, titles: dict[str, str] | None = None):
        super().__init__(level=logging.DEBUG)
        self.steps = steps
        self.titles = titles or {}  # step → what people call it (pipeline/wiring/step_titles.py)
        self.stream = stream or sys.stdout
        self.started: dict[str, float] = {}
        self.run_started = time.monotonic()

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        step = meta.get("step_key") or ""
        shown = self.titles.get(step, step)
        if event is None:
            if record.levelno >= logging.INFO and step:
                self._print(f"        {meta.get('orig_message', record.getMessage())}")
            return
        kind = event.event_type
        elapsed = f"{time.monotonic() - self.run_started:6.0f} s"
        if kind == EventType.STEP_START:
            self.started[step] = time.monotonic()
            self._print(f"[{len(self.started):>2}/{self.steps}] {elapsed}  {shown} …")
        elif kind == EventType.STEP_SUCCESS:
            self._print(f"        完成 {shown}（{time.monotonic() - self.started.get(step, time.monotonic()):.1f} 秒）")
        elif kind == EventType.STEP_FAILURE:
            self._print(f"        失败 {shown}：{event.event_specific_data.error.message.strip()}")
        elif kind == EventType.STEP_SKIPPED:
            self._print(f"        跳过 {shown}（上游未完成）")
        elif kind == EventType.ASSET_CHECK_EVALUATION:
            check = event.event_specific_data
            if not check.passed:
                self._print(f"        检查未通过：{check.asset_check_key.name}（{shown}）")


@dg.logger(
    config_schema={"steps": dg.Field(int, default_value=0), "titles": dg.Field(dg.Permissive(), is_required=False)},
    description="Stage progress for the CLI.",
)
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = logging.Logger("litong.progress", level=logging.DEBUG)
    config = init_context.logger_config
    log.addHandler(ProgressHandler(config["steps"], titles=config.get("titles")))
    return log
