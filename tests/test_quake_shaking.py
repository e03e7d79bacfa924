"""The shaking by its convention (issue 28 §2): the printed coefficients, the degree of an estimate (the isoseismal
it lies inside), a town's degree from its buildings or its centre, the distance screen that follows the magnitude."""

from __future__ import annotations

import csv
import math

import duckdb
import numpy as np
import pytest

from pipeline.platform.paths import PROJECT_ROOT, RULES_DIR
from pipeline.quake import shaking
from pipeline.quake.event import DISTRICT_CENTRE, EventError, declare, event_from
from pipeline.quake.exposure import quake_db_path
from pipeline.quake.respond import respond
from tests.conftest import Deployment, csv_bytes, example_row, run_all
from tests.test_ledger import building

EPICENTRE = (106.190, 37.930)  # under 金积镇
GOOD = {"time": "2025-06-30 14:23:05", "lon": EPICENTRE[0], "lat": EPICENTRE[1], "depth_km": 10, "magnitude": 6.5}

# shared/domain/quake.md §1, "Table 1 Seismic intensity attenuation relation coefficients for each sub-region"
# (Development of ground motion attenuation relations for the new seismic hazard map of China, 2013), as printed:
# zone → (long A, B, C, R0), (short A, B, C, R0), σ. The 青藏 short-axis R0 cell is not legible in the print;
# 9 is the value of the code sources (quake.md).
PRINTED = {
    "GB18306_2015_EAST": (("5.7123", "1.3626", "-4.2903", "25"), ("3.6588", "1.3626", "-3.5406", "13"), "0.5826"),
    "GB18306_2015_QZ": (("6.4580", "1.2746", "-4.4709", "25"), ("3.3682", "1.2746", "-3.3119", "9"), "0.6636"),
}


def test_the_coefficients_are_the_printed_ones_digit_for_digit():
    with open(RULES_DIR / "reference" / "quake_attenuation.csv", encoding="utf-8") as f:
        rows = {(r["relation_id"], r["axis"]): r for r in csv.DictReader(f)}
    for rid, (long, short, sigma) in PRINTED.items():
        for axis, printed in (("long", long), ("short", short)):
            row = rows[(rid, axis)]
            assert (row["A"], row["B"], row["C"], row["R0_km"]) == printed, (rid, axis)
            assert (row["sigma"], row["log_base"]) == (sigma, "10")
    assert set(shaking.response_settings()["attenuation"]) == set(PRINTED)  # the relations in use are these


# --- the degree of an estimate: the isoseismal it lies inside ----------------------------------------------------
@pytest.mark.parametrize(("intensity", "expected"), [(7.0, 7), (7.5, 7), (7.99, 7), (8.0, 8), (6.96, 6), (5.99, 5)])
def test_an_estimate_is_the_degree_of_the_isoseismal_it_lies_inside(intensity, expected):
    assert int(shaking.degree(intensity)) == expected


def test_gb_t_17742_rounding_stays_for_instrumental_intensity_only():
    assert [int(shaking.degree(i, "instrumental")) for i in (6.49, 6.5, 7.49)] == [6, 7, 7]
    conventions = shaking.response_settings()["degree_convention"]
    assert (
        conventions["attenuation"]["rule"] == "isoseismal_floor" and "quake.md" in conventions["attenuation"]["source"]
    )


def _long_axis_km(intensity: float, magnitude: float) -> float:
    """Where the larger of the two long-axis relations gives `intensity` (by hand, from the printed table)."""
    qz = 10 ** ((6.4580 + 1.2746 * magnitude - intensity) / 4.4709) - 25
    east = 10 ** ((5.7123 + 1.3626 * magnitude - intensity) / 4.2903) - 25
    return max(qz, east)


def test_a_point_at_696_is_shaken_to_vi_never_rounded_up_to_vii():
    """No rounding to 0.1 before the degree is taken: a point at 6.96 lies outside the Ⅶ isoseismal (Ⅵ), and its
    intensity is shown 6.9, never 7.0 beside Ⅵ."""
    km = _long_axis_km(6.96, 6.5)
    lat = np.array([EPICENTRE[1] + km / (6371.0 * math.pi / 180)])
    value = shaking.district_intensity(6.5, *EPICENTRE, np.array([EPICENTRE[0]]), lat, None)
    assert value[0] == pytest.approx(6.96, abs=1e-6)
    assert int(shaking.degree(value)[0]) == 6 and float(shaking.shown(value)[0]) == 6.9


def test_the_maps_zones_are_bounded_by_the_isoseismals_of_whole_degrees():
    """Zone Ⅶ is 7 ≤ I < 8: its outer edge is where the relation gives exactly 7."""
    for rel in shaking.district_relations():
        for d, (ra, rb) in shaking.isoseismal_radii(6.5, rel).items():
            assert rel.long.intensity(6.5, np.array([ra]))[0] == pytest.approx(d, abs=1e-9)
            assert rel.short.intensity(6.5, np.array([rb]))[0] == pytest.approx(d, abs=1e-9)


# --- the distance screen ---------------------------------------------------------------------------------------
def _east_of_centre(km: float) -> tuple[float, float]:
    lon, lat = DISTRICT_CENTRE
    return round(lon + km / (111.195 * math.cos(math.radians(lat))), 4), lat


def test_an_m85_beyond_300_km_that_shakes_litong_to_vi_is_taken():
    lon, lat = _east_of_centre(350)
    event = event_from({**GOOD, "lon": lon, "lat": lat, "magnitude": 8.5})  # not refused
    assert 340 < event.epicentre_km() < 360
    edge = shaking.district_intensity(8.5, lon, lat, np.array([DISTRICT_CENTRE[0]]), np.array([lat]), None)
    assert int(shaking.degree(edge)[0]) >= 6  # it does shake the district's centre to Ⅵ


def test_a_small_event_far_away_is_refused_saying_why():
    lon, lat = _east_of_centre(250)
    with pytest.raises(
        EventError, match=r"震中距利通区中心约 250 千米：按衰减关系，3\.0级地震不出现Ⅵ度区，本区估计烈度低于Ⅵ度"
    ):
        event_from({**GOOD, "lon": lon, "lat": lat, "magnitude": 3.0})
    lon, lat = _east_of_centre(200)  # an M6.5 200 km away: its Ⅵ (with the margin) reaches 105 km
    with pytest.raises(EventError, match="长轴半径约 105 千米"):
        event_from({**GOOD, "lon": lon, "lat": lat})
    event_from({**GOOD, "lon": _east_of_centre(20)[0], "lat": DISTRICT_CENTRE[1], "magnitude": 3.0})  # in the district


# --- towns: by their buildings (or centre), never raised by a pipeline segment ----------------------------------
# buildings (id, town, lon, lat): 金积镇 at the epicentre, four towns at points of their own; the park's building
# at its edge far from the epicentre, its pipeline segment running from the epicentre to it.
BUILDINGS = [("JJ-1", "640302100", 106.190, 37.930), ("SL-1", "640302107", 106.200, 37.990),
             ("BD-1", "640302103", 105.975, 37.725), ("GC-1", "640302105", 106.290, 38.010),
             ("SH-1", "640302200", 106.330, 37.960), ("NK-1", "640302401", 106.470, 37.790)]  # fmt: skip
PARK = "640302401"


@pytest.fixture(scope="module")
def jinji(tmp_path_factory) -> Deployment:
    deployment = Deployment(tmp_path_factory.mktemp("jinji"))
    rows = [
        building(bid, town_code=town, town_name="", lon=f"{lon}", lat=f"{lat}") for bid, town, lon, lat in BUILDINGS
    ]
    deployment.drop("buildings", "b.csv", csv_bytes("buildings", rows), unit="ZJJ")
    segment = example_row("pipelines", segment_id="GD-NK-1", start_lon="106.19", start_lat="37.93", end_lon="106.47",
                          end_lat="37.79", town_codes=PARK, length_km="28")  # fmt: skip
    deployment.drop("pipelines", "p.csv", csv_bytes("pipelines", [segment]), unit="FGJ")
    assert run_all(deployment, publish=False).success
    return deployment


def _hand_intensity(lon: float, lat: float, magnitude: float, strike: float) -> float:
    """The larger of the two relations (long and short axes written out from the printed table) at a point, with
    elliptical isoseismals along the strike: the I whose ellipse passes through the point, by bisection."""
    east = math.radians(lon - EPICENTRE[0]) * math.cos(math.radians((lat + EPICENTRE[1]) / 2)) * 6371.0
    north = math.radians(lat - EPICENTRE[1]) * 6371.0
    s = math.radians(strike)
    x, y = abs(east * math.sin(s) + north * math.cos(s)), abs(east * math.cos(s) - north * math.sin(s))
    best = -math.inf
    for (al, cl, r0l), (as_, cs, r0s), b in (((6.4580, -4.4709, 25), (3.3682, -3.3119, 9), 1.2746),
                                             ((5.7123, -4.2903, 25), (3.6588, -3.5406, 13), 1.3626)):  # fmt: skip
        top = min(al + b * magnitude + cl * math.log10(r0l), as_ + b * magnitude + cs * math.log10(r0s))
        lo, hi = 0.0, top
        for _ in range(60):
            mid = (lo + hi) / 2
            ra = max(10 ** ((mid - al - b * magnitude) / cl) - r0l, 1e-12)
            rb = max(10 ** ((mid - as_ - b * magnitude) / cs) - r0s, 1e-12)
            lo, hi = (mid, hi) if (x / ra) ** 2 + (y / rb) ** 2 <= 1 else (lo, mid)
        best = max(best, lo)
    return best


def test_an_m65_under_jinji_with_strike_30_gives_the_towns_computed_by_hand(jinji):
    """Each town with buildings at the floor of its highest building's intensity; the others at their centre
    (reference/town_centres.csv); the towns at Ⅶ and above exactly those of the hand computation."""
    event = event_from({**GOOD, "strike": 30})
    declare(event, jinji.data_raw)
    response = respond(event, jinji.output / "published" / "litong.duckdb", jinji.db, jinji.output)
    hand: dict[str, float] = {}
    for _, town, lon, lat in BUILDINGS:
        hand[town] = max(hand.get(town, -math.inf), _hand_intensity(lon, lat, 6.5, 30))
    with open(PROJECT_ROOT / "reference" / "town_centres.csv", encoding="utf-8") as f:
        centres = {r["town_code"]: (r["town_name"], float(r["lon"]), float(r["lat"])) for r in csv.DictReader(f)}
    for code, (_, lon, lat) in centres.items():
        hand.setdefault(code, _hand_intensity(lon, lat, 6.5, 30))
    assert all(abs(v - round(v)) > 0.01 for v in hand.values())  # no town on an isoseismal: the floor is certain
    expected = {centres[code][0]: math.floor(v) for code, v in hand.items()}
    got = {name: d for name, d, _ in response.report.towns}
    assert got == expected
    assert {t for t, d in got.items() if d >= 7} == {t for t, d in expected.items() if d >= 7} != set()
    store = duckdb.connect(str(quake_db_path(jinji.output)), read_only=True)
    try:
        rows = store.execute("SELECT town_code, basis, buildings FROM quake_towns WHERE event_id = ?",
                             [event.event_id]).fetchall()  # fmt: skip
        intensities = dict(store.execute("SELECT town_code, intensity FROM quake_towns WHERE event_id = ?",
                                         [event.event_id]).fetchall())  # fmt: skip
    finally:
        store.close()
    with_buildings = {town for _, town, _, _ in BUILDINGS}
    assert {c: (b, n) for c, b, n in rows} == {
        c: ("buildings", 1) if c in with_buildings else ("centre", 0) for c in centres}  # fmt: skip
    assert intensities == pytest.approx(hand, abs=1e-4)


def test_a_pipeline_segment_never_raises_its_town(jinji):
    """The park's segment runs from the epicentre (Ⅷ) to the park; its building is at Ⅵ: the park is Ⅵ and the
    segment keeps its own Ⅷ on its row (the 排查清单, the key objects)."""
    event = event_from({**GOOD, "strike": 30})
    declare(event, jinji.data_raw)
    response = respond(event, jinji.output / "published" / "litong.duckdb", jinji.db, jinji.output)
    assets = {(r.kind, r.asset_id): int(r.degree) for r in response.exposure.assets.itertuples()}
    assert assets[("pipelines", "GD-NK-1")] == 8 and assets[("buildings", "NK-1")] == 6
    park = {name: (d, n) for name, d, n in response.report.towns}["宁夏吴忠国家农业科技园区"]
    assert park == (6, 2)  # Ⅵ, by its building; 2 objects at Ⅵ+ (the building and the segment)
    store = duckdb.connect(str(quake_db_path(jinji.output)), read_only=True)
    try:  # the same event shaken again (the test above did it first): its towns replaced, not added
        n = store.execute("SELECT count(*) FROM quake_towns WHERE event_id = ?", [event.event_id]).fetchone()[0]
    finally:
        store.close()
    assert n == 13


def test_the_ellipse_is_solved_to_the_bisections_value_everywhere():
    """The Newton solve of the isoseismal through a point agrees with a long bisection (60 halvings from the
    whole range) to 1e-7 degree, from the epicentre out to 300 km, on and off the axes."""
    rng = np.random.default_rng(7)
    x = np.r_[rng.uniform(-300, 300, 3000), 0.0, 0.0, 1e-7, 40.0, 0.0]
    y = np.r_[rng.uniform(-300, 300, 3000), 0.0, 25.0, 0.0, 0.0, 1e-7]
    for rel in shaking.district_relations():
        for magnitude in (4.0, 6.5, 8.5):
            got = shaking.intensity_of(rel, magnitude, x, y)
            lo, hi = np.full(x.shape, -20.0), np.full(x.shape, rel.epicentral(magnitude))
            for _ in range(60):
                mid = (lo + hi) / 2
                ra = np.maximum(rel.long.radius(magnitude, mid), 1e-12)
                rb = np.maximum(rel.short.radius(magnitude, mid), 1e-12)
                inside = (np.abs(x) / ra) ** 2 + (np.abs(y) / rb) ** 2 <= 1
                lo, hi = np.where(inside, mid, lo), np.where(inside, hi, mid)
            assert np.abs(got - lo).max() < 1e-7, (rel.relation_id, magnitude)
