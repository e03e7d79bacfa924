"""Dagster assets of the earthquake response (group "quake"): one dynamic partition per event.

quake_shaking       every asset of the last published ledger shaken by the event, into the quake store, and the
                    首报 (PDF + text): what must go out within a minute
quake_first_report  the 首报 as metadata, the 排查清单 per responsible unit and the map (after the 首报 is out)
quake_follow_up     续报 N for every batch of 灾情反馈 the ledger stage has taken since the last report
                    (quake_followup_job: the earthquake sensor starts it when a published snapshot has new batches)

close_earthquake_job (the duty officer, in the UI; or `cli quake close`) ends an event: 终报, and the intake
refuses the event's later batches.

The partition key is the event id (`20250630T142305-M6.5`). Each event keeps its own rows and folder
(output/quake/<event id>/); re-running one never touches another. The response reads the published
snapshot and writes its own store, so it never waits behind a survey run's writer lock.
"""

import dagster as dg

from pipeline.platform.resources import QUAKE_TAG, LitongStore
from pipeline.publish.assets import image_markdown
from pipeline.quake.event import EventError, declare, event_from, find_event
from pipeline.quake.followup import close, follow_up
from pipeline.quake.respond import checklists_and_map, event_dir, first_report

quake_events = dg.DynamicPartitionsDefinition(name="quake_events")


def _event(context: dg.AssetExecutionContext, store: LitongStore):
    try:
        return find_event(store.raw_dir(), context.partition_key)
    except EventError as e:
        raise dg.Failure(description=str(e)) from e


@dg.asset(group_name="quake", partitions_def=quake_events, kinds={"duckdb"},
          description="每个登记对象在本次地震中的震中距、估计烈度、PGA/PGV、未销号隐患和排查优先序，以及首报。")  # fmt: skip
def quake_shaking(context: dg.AssetExecutionContext, store: LitongStore) -> dg.MaterializeResult:
    event = _event(context, store)
    response = first_report(event, store.published_db_path(), store.db_path(), store.out_dir())
    report, by_degree = response.report, response.exposure.by_degree()
    return dg.MaterializeResult(
        metadata={
            "event": event.describe_zh(),
            "max_intensity": report.max_intensity,
            "felt": report.felt,
            "assets": sum(by_degree.values()),
            "by_degree": dg.MetadataValue.json({str(k): v for k, v in by_degree.items()}),
            "ledger_snapshot": str(response.exposure.snapshot),
            "ledger_published_at": response.exposure.published_at or "",
            "files": dg.MetadataValue.json([str(p) for p in response.files]),
        }
    )


@dg.asset(group_name="quake", partitions_def=quake_events, deps=[quake_shaking],
          description="首报（元数据）、按责任单位的排查清单和烈度分布图。")  # fmt: skip
def quake_first_report(context: dg.AssetExecutionContext, store: LitongStore) -> dg.MaterializeResult:
    event = _event(context, store)
    folder = event_dir(store.out_dir(), event)
    text = (folder / "首报.txt").read_text(encoding="utf-8")
    files = checklists_and_map(event, store.out_dir())
    figure, checklists = files[0], [p for p in files[1:] if p.suffix == ".xlsx"]
    return dg.MaterializeResult(
        metadata={
            "首报": dg.MetadataValue.md("```\n" + text + "\n```"),
            "pdf": dg.MetadataValue.path(str(folder / "首报.pdf")),
            "annex_pdf": dg.MetadataValue.path(str(folder / "首报附件.pdf")),  # the long lists (附件)
            "map": dg.MetadataValue.md(image_markdown(figure)),
            "map_file": dg.MetadataValue.path(str(figure)),
            "checklists": dg.MetadataValue.json([p.name for p in checklists]),
        }
    )


@dg.asset(group_name="quake", partitions_def=quake_events, deps=[quake_first_report],
          description="续报：各单位灾情反馈（每受理一批写一期），估计与现场确认对比、新增震损隐患。")  # fmt: skip
def quake_follow_up(context: dg.AssetExecutionContext, store: LitongStore) -> dg.MaterializeResult:
    event = _event(context, store)
    files = follow_up(event, store.published_db_path(), store.db_path(), store.out_dir())
    texts = [p for p in files if p.suffix == ".txt"]
    metadata = {"reports_written": dg.MetadataValue.json([p.stem for p in texts]),
                "files": dg.MetadataValue.json([str(p) for p in files])}  # fmt: skip
    if texts:
        metadata["latest"] = dg.MetadataValue.md("```\n" + texts[-1].read_text(encoding="utf-8") + "\n```")
    return dg.MaterializeResult(metadata=metadata)


quake_assets = [quake_shaking, quake_first_report, quake_follow_up]

quake_job = dg.define_asset_job(
    "quake_job",
    selection=dg.AssetSelection.groups("quake"),
    partitions_def=quake_events,
    description="震后响应：一次地震（一个分区）的烈度估计、首报和排查清单。",
    tags={QUAKE_TAG: "respond"},
)


quake_followup_job = dg.define_asset_job(
    "quake_followup_job",
    selection=dg.AssetSelection.assets(quake_follow_up),
    partitions_def=quake_events,
    description="续报：一次地震（一个分区）新受理的灾情反馈批次。",
    tags={QUAKE_TAG: "follow_up"},
)


class EarthquakeDeclaration(dg.Config):
    """An earthquake as the duty officer declares it in the UI (Launchpad of declare_earthquake_job)."""

    time: str  # origin time, Beijing time: 2025-06-30 14:23:05
    lon: float
    lat: float
    depth_km: float
    magnitude: float  # M as the China Earthquake Networks Center reports it
    strike: float | None = None  # degrees clockwise from north, when the fault is known
    place: str = ""


@dg.op(description="登记一次地震：写入 data_raw/earthquakes/YJJ/（地震传感器随即启动该事件的 quake_job）。")
def declare_earthquake(context: dg.OpExecutionContext, config: EarthquakeDeclaration, store: LitongStore) -> str:
    try:
        event = event_from(config.model_dump())
    except EventError as e:
        raise dg.Failure(description=str(e)) from e
    path = declare(event, store.raw_dir())
    context.instance.add_dynamic_partitions(quake_events.name, [event.event_id])
    context.log.info(f"已登记地震事件 {event.event_id}：{path}")
    return event.event_id


@dg.job(tags={QUAKE_TAG: "declare"}, description="值班人员在界面登记地震（发震时刻、震中、深度、震级、走向）。")
def declare_earthquake_job():
    declare_earthquake()


class EarthquakeClosure(dg.Config):
    """The duty officer ends an event (Launchpad of close_earthquake_job)."""

    event_id: str  # 20250630T142305-M6.5
    closed_by: str = "值班人员"  # who closes it, as the 终报 names them


@dg.op(description="结束一次地震的应急响应：写终报；此后不再受理该事件的灾情反馈。")
def close_earthquake(context: dg.OpExecutionContext, config: EarthquakeClosure, store: LitongStore) -> str:
    try:
        event = find_event(store.raw_dir(), config.event_id.strip())
    except EventError as e:
        raise dg.Failure(description=str(e)) from e
    files = close(event, store.raw_dir(), store.published_db_path(), store.db_path(), store.out_dir(),
                  config.closed_by.strip() or "值班人员")  # fmt: skip
    final = next(p for p in files if p.name == "终报.txt")
    context.log.info(f"地震事件 {event.event_id} 已结束，终报：{final}")
    return str(final)


@dg.job(tags={QUAKE_TAG: "close"}, description="值班人员结束一次地震的应急响应（终报），此后不再受理该事件的灾情反馈。")
def close_earthquake_job():
    close_earthquake()
