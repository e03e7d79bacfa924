"""Issue 29 §4: the district's outline, kept in reference/ with its source and licence, drawn under the asset map
and the isoseismal map (and so under the portal's map, the asset map's PNG); town labels that do not overlap;
nothing fetched from the network while drawing. Each test reads the drawn figure's artists or the files."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import socket

import numpy as np
import pytest

from pipeline.platform import store
from pipeline.platform.paths import REFERENCE_DIR
from pipeline.registries.templates import towns
from tests.conftest import Deployment, csv_bytes, run_all, saved_figures
from tests.test_ledger import building

BOUNDARIES = REFERENCE_DIR / "boundaries"
AS_OF = dt.date(2023, 9, 1)
SEAT = (106.20, 37.99)  # 吴忠 town centre (胜利镇), where the district government sits (U, approximate)


def _district_feature() -> dict:
    """The 利通区 feature of the reference file, read here with json (not through the module under test)."""
    collection = json.loads((BOUNDARIES / "litong.geojson").read_text(encoding="utf-8"))
    (feature,) = [f for f in collection["features"] if f["properties"]["adcode"] == "640302"]
    return feature


def _vertex_count(feature: dict) -> int:
    return sum(len(ring) for polygon in feature["geometry"]["coordinates"] for ring in polygon)


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access while drawing a map")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _district_patch(ax):
    return next((p for p in ax.patches if p.get_gid() == "basemap-district"), None)


# --- the reference file ---------------------------------------------------------------------------------------


def test_the_outline_loads_and_has_its_source_and_licence_beside_it():
    from pipeline.publish.basemap import areas, district

    feature = _district_feature()
    assert feature["properties"]["name"] == "利通区" and feature["properties"]["role"] == "district"
    assert (BOUNDARIES / "litong.geojson").stat().st_size < 200_000
    assert district().name == "利通区" and district().vertex_count == _vertex_count(feature) == 93
    assert {a.name for a in areas()} >= {"青铜峡市", "灵武市", "红寺堡区"}  # the neighbours drawn in grey
    source = (BOUNDARIES / "source.md").read_text(encoding="utf-8")
    for needed in ("https://github.com/xmc811/mapchina", "053136c1c9c01742681bf9224ecad4d8c0bf9df0",
                   "Open Database License", "© OpenStreetMap contributors", "Retrieved**: 2026-12-07",
                   "Town (乡镇) boundaries: none"):  # fmt: skip
        assert needed in source, needed


def test_the_outline_lies_where_the_district_is():
    """Its extent lies in the templates' longitudes (about 105.9–106.6 E) and near their latitudes (37.6–38.1 N:
    the outline reaches 37.47 N in the south, where the sample has no asset), and it holds the district's seat
    and the sample's 金积镇 and 板桥乡 centres; points across the Yellow River and in 灵武/盐池 are outside. The
    measured extent, area and fit to the sample are in source.md."""
    from pipeline.publish.basemap import contains

    ring = np.asarray(_district_feature()["geometry"]["coordinates"][0][0])
    assert 105.9 < ring[:, 0].min() < ring[:, 0].max() < 106.6
    assert 37.4 < ring[:, 1].min() < ring[:, 1].max() < 38.15
    assert contains([SEAT[0], 106.185, 106.255], [SEAT[1], 37.935, 37.88]).tolist() == [True, True, True]
    assert contains([105.80, 106.60], [37.90, 37.90]).tolist() == [False, False]


# --- the asset map (publish, and the portal's leaders page, which shows its PNG) ------------------------------


@pytest.fixture(scope="module")
def small_district(tmp_path_factory) -> Deployment:
    """Five buildings in five towns, scored and on the ledger."""
    deployment = Deployment(tmp_path_factory.mktemp("basemap"))
    rows = [building(f"B-{i}", town_code=town, town_name="", lon=str(lon), lat=str(lat), appraisal_grade="D")
            for i, (town, lon, lat) in enumerate([("640302100", 106.185, 37.935), ("640302101", 106.245, 37.965),
                                                  ("640302107", 106.200, 37.990), ("640302201", 106.255, 37.880),
                                                  ("640302106", 106.225, 38.025)])]  # fmt: skip
    deployment.drop("buildings", "b.csv", csv_bytes("buildings", rows), unit="ZJJ")
    assert run_all(deployment, publish=False).success
    return deployment


def _asset_map(deployment: Deployment, out, monkeypatch):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from pipeline.publish.charts import CHARTS_BY_NAME
    from pipeline.publish.inputs import PublishInputs
    from pipeline.publish.render import render_chart

    saved = saved_figures(monkeypatch)
    with store.connect(deployment.db) as con:
        render_chart(CHARTS_BY_NAME["asset_map"], PublishInputs(con, AS_OF), out)
    fig = saved[-1]
    FigureCanvasAgg(fig).draw()
    return fig


def test_the_asset_map_draws_the_outline_under_the_assets(small_district, tmp_path, monkeypatch, offline):
    from pipeline.publish.basemap import CREDIT

    ax = _asset_map(small_district, tmp_path, monkeypatch).axes[0]
    patch = _district_patch(ax)
    assert patch is not None, "no district outline on the asset map"
    assert len(patch.get_path().vertices) == _vertex_count(_district_feature())
    assert all(patch.get_zorder() < c.get_zorder() for c in ax.collections)  # under the assets' markers
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    assert x0 <= 106.046 and x1 >= 106.373 and y0 <= 37.466 and y1 >= 38.072  # the whole district is shown
    assert CREDIT in [t.get_text() for t in ax.texts]  # the ODbL attribution


def test_the_asset_maps_town_labels_are_placed_apart(small_district, tmp_path, monkeypatch):
    fig = _asset_map(small_district, tmp_path, monkeypatch)
    labels = _town_labels(fig.axes[0])
    assert {t.get_text() for t in labels} == {"板桥乡", "胜利镇", "金积镇", "金星镇", "金银滩镇"}
    _assert_apart(fig, fig.axes[0], labels)


def _town_labels(ax) -> list:
    return [t for artist in ax.get_children() for t in artist.get_children() if t.get_gid() == "town-label"]


def _assert_apart(fig, ax, labels):
    """No two labels' boxes (as drawn, pad included) meet, none meets the legend, all are inside the axes."""
    renderer = fig.canvas.get_renderer()
    boxes = {t.get_text(): t.get_bbox_patch().get_window_extent(renderer) for t in labels if t.get_visible()}
    crossing = [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes.items(), 2) if ba.overlaps(bb)]
    assert crossing == []
    legend = ax.get_legend()
    if legend is not None:
        assert [n for n, b in boxes.items() if b.overlaps(legend.get_window_extent(renderer))] == []
    assert all(ax.bbox.x0 <= b.x0 and b.x1 <= ax.bbox.x1 and ax.bbox.y0 <= b.y0 and b.y1 <= ax.bbox.y1
               for b in boxes.values())  # fmt: skip


def test_labels_of_towns_at_almost_the_same_place_are_moved_apart():
    """Thirteen names whose anchors lie within a few hundred metres (what the district's crowded centre gives
    at the briefing's size) end with no two boxes meeting; the same input gives the same layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from pipeline.publish.inputs import short_town
    from pipeline.publish.labels import TownLabels
    from pipeline.registries.templates import towns

    names = [short_town(n) for n in towns().values()]
    assert len(names) == 13
    rng = np.random.default_rng(7)
    anchors = [(106.2 + dx, 37.95 + dy) for dx, dy in rng.normal(0, 0.003, (len(names), 2))]

    def layout():
        fig = Figure(figsize=(6, 5))
        ax = fig.add_subplot()
        ax.set_xlim(106.0, 106.4)
        ax.set_ylim(37.8, 38.1)
        labels = TownLabels(ax, [(n, x, y) for n, (x, y) in zip(names, anchors, strict=True)], fontsize=9)
        FigureCanvasAgg(fig).draw()
        return fig, ax, labels

    fig, ax, labels = layout()
    _assert_apart(fig, ax, labels.texts)
    assert labels.moved.count(True) >= 10  # they all started on one spot
    positions = [t.get_position() for t in labels.texts]
    assert [t.get_position() for t in layout()[2].texts] == positions


def test_a_label_whose_town_is_off_the_map_or_unknown_is_not_drawn_in_the_margin():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from pipeline.publish.labels import TownLabels

    fig = Figure(figsize=(4, 4))
    ax = fig.add_subplot()
    ax.set_xlim(106.0, 106.4)
    ax.set_ylim(37.8, 38.1)
    labels = TownLabels(ax, [("金积镇", 106.19, 37.93), ("远处", 107.5, 37.9), ("不明", float("nan"), 37.9)])
    FigureCanvasAgg(fig).draw()
    assert [t.get_visible() for t in labels.texts] == [True, False, False]
    _assert_apart(fig, ax, labels.texts)


# --- the isoseismal map of the earthquake response --------------------------------------------------------------


def test_the_isoseismal_map_draws_the_outline(small_district, monkeypatch, offline):
    from pipeline.quake.event import declare, event_from
    from pipeline.quake.respond import respond
    from tests.test_quake import GOOD

    saved = saved_figures(monkeypatch)
    event = event_from(dict(GOOD))
    declare(event, small_district.data_raw)
    respond(event, small_district.output / "published" / "litong.duckdb", small_district.db, small_district.output)
    (fig,) = [f for f in saved if any("估计烈度分布" in ax.get_title() for ax in f.axes)]
    ax = fig.axes[0]
    patch = _district_patch(ax)
    assert patch is not None, "no district outline on the isoseismal map"
    assert len(patch.get_path().vertices) == _vertex_count(_district_feature())
    neighbours = [p for p in ax.artists + ax.patches if str(p.get_gid()).startswith("basemap-neighbour-")]
    assert len(neighbours) == 12
    lines = [line for line in ax.lines if "区外缘" in line.get_label()]
    assert lines and all(patch.get_zorder() < line.get_zorder() for line in lines)  # under the isoseismals
    labels = _town_labels(ax)  # the towns named apart, as on the asset map
    assert labels and {t.get_text() for t in labels} <= set(towns().values())
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    _assert_apart(fig, ax, labels)


def test_the_samples_asset_map_has_all_thirteen_town_labels_apart(sample, tmp_path, monkeypatch):
    """The bundled sample: thirteen towns, the three of the centre within a few kilometres of each other."""
    deployment, _ = sample
    fig = _asset_map(deployment, tmp_path, monkeypatch)
    labels = _town_labels(fig.axes[0])
    assert len(labels) == 13
    _assert_apart(fig, fig.axes[0], labels)
    assert _district_patch(fig.axes[0]) is not None
