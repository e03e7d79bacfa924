"""The buildings an event is estimated to damage, per damage state, and the people in them (issue 28 §1).

The interim method is the macroseismic method of Lagomarsino & Giovinazzi (2006, RISK-UE): a building's mean
damage grade from the intensity and the vulnerability index V of its EMS-98 class, the damage grades D0…D5 from
a beta distribution, V's plausible range as the uncertainty band (V_min … V_max, most likely V in between).
Every number is rule data (rules/quake/damage_estimate.yaml, rules/reference/quake_vulnerability.csv,
quake_structure_class.csv); a Chinese damage matrix (rules/reference/quake_damage_matrix.csv), once every row holds
a probability, replaces the method by data alone.

The probabilities depend only on (class, degree, V variant), so the model is a small table computed here with
numpy/scipy; the per-building rows and every sum are DuckDB SQL over the event's exposure (a million buildings
stay a join and a group-by). Each event keeps its model table and its per-building estimates in the quake store
(`quake_damage_model`, `quake_damage`), so a 续报 compares the ground with exactly what the 首报 estimated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import duckdb
import numpy as np
import pandas as pd

from pipeline.formats.yaml_file import load_yaml
from pipeline.platform.paths import RULES_DIR
from pipeline.registries.templates import towns

STATES = ("基本完好", "轻微破坏", "中等破坏", "严重破坏", "毁坏")
VARIANTS = ("low", "likely", "high")  # V_min, V_likely, V_max: the least, the most likely and the most damage
DEGREES = range(1, 13)
STATE_COLUMNS = [f"s{i}" for i in range(len(STATES))]

MODEL_DDL = """CREATE TABLE IF NOT EXISTS quake_damage_model (
    event_id VARCHAR, damage_class VARCHAR, degree INTEGER, variant VARCHAR,
    s0 DOUBLE, s1 DOUBLE, s2 DOUBLE, s3 DOUBLE, s4 DOUBLE)"""
# One row per building at ≥ the felt degree: its class, the most likely state and P(≥ severe_from) per V variant.
# `priority` is the building's row of quake_exposure (unique within the event; an integer key is written in a
# fraction of the time of the asset id at a million rows).
DAMAGE_DDL = """CREATE TABLE IF NOT EXISTS quake_damage (
    event_id VARCHAR, priority INTEGER, town_code VARCHAR, damage_class VARCHAR, degree INTEGER, occupants DOUBLE,
    likely_state VARCHAR, p_severe_low DOUBLE, p_severe DOUBLE, p_severe_high DOUBLE)"""
METHOD_DDL = """CREATE TABLE IF NOT EXISTS quake_damage_method (event_id VARCHAR, method_zh VARCHAR, banded BOOLEAN)"""


def settings() -> dict:
    with open(RULES_DIR / "quake" / "damage_estimate.yaml", encoding="utf-8") as f:
        return load_yaml(f)


def mean_damage(intensity: np.ndarray | float, v: np.ndarray | float, s: dict | None = None) -> np.ndarray:
    """μD = 2.5 [1 + tanh((I + 6.25 V − 13.1) / Q)]."""
    m = (s or settings())["mean_damage"]
    i, vv = np.asarray(intensity, dtype=float), np.asarray(v, dtype=float)
    return 2.5 * (1.0 + np.tanh((i + m["v_factor"] * vv - m["offset"]) / m["ductility_q"]))


def grade_probabilities(mu: np.ndarray | float, s: dict | None = None) -> np.ndarray:
    """P(D0) … P(D5) for each mean damage grade (rows sum to 1): the beta distribution on [0, 6] with t and
    r = t (c1 μ + c2 μ² + c3 μ³), P(Dk) = F(k + 1) − F(k)."""
    b = (s or settings())["beta"]
    t = float(b["t"])
    c1, c2, c3 = b["r_coefficients"]
    mu = np.clip(np.atleast_1d(np.asarray(mu, dtype=float)), 1e-6, 5 - 1e-6)  # r in (0, t): the beta exists
    r = t * (c1 * mu + c2 * mu**2 + c3 * mu**3)
    edges = np.arange(7) / 6.0
    from scipy.special import betainc  # here: SciPy takes 0.2-0.5 s to import, and only an earthquake needs it

    cdf = betainc(r[:, None], (t - r)[:, None], edges[None, :])  # regularised incomplete beta = the beta CDF
    return np.diff(cdf, axis=1)


def state_probabilities(grades: np.ndarray, s: dict | None = None) -> np.ndarray:
    """D0…D5 → the five states of the rule file (columns in STATES order)."""
    mapping = (s or settings())["grades_to_states"]
    out = np.zeros((grades.shape[0], len(STATES)))
    for k in range(6):
        out[:, STATES.index(mapping[f"D{k}"])] += grades[:, k]
    return out


def _read_csv(name: str) -> pd.DataFrame:
    return pd.read_csv(RULES_DIR / "reference" / name, dtype=str, keep_default_na=False)


def _matrix() -> pd.DataFrame | None:
    """The Chinese damage matrix when every row holds a probability, else None (the file is a template)."""
    m = _read_csv("quake_damage_matrix.csv")
    p = pd.to_numeric(m["probability"].replace("", np.nan), errors="coerce")
    if m.empty or p.isna().any():
        return None
    return m.assign(probability=p)


@dataclass(frozen=True)
class Model:
    method_zh: str
    banded: bool  # V range (three variants) or a single matrix value
    table: pd.DataFrame  # damage_class, degree, variant, s0..s4
    classes: pd.DataFrame  # structure_type, damage_class, weaker_damage_class
    unknown: str  # the structure type a building without one is read as
    severe_from: int  # index into STATES
    scale_note_zh: str


@cache
def model() -> Model:
    s = settings()
    classes = _read_csv("quake_structure_class.csv")
    matrix = _matrix()
    if matrix is None:
        vuln = _read_csv("quake_vulnerability.csv")
        rows = []
        for v_row in vuln.itertuples():
            for variant, col in zip(VARIANTS, ("v_min", "v_likely", "v_max"), strict=True):
                degrees = np.array(list(DEGREES), dtype=float)
                probs = state_probabilities(
                    grade_probabilities(mean_damage(degrees, float(getattr(v_row, col)), s), s), s
                )
                rows += [(v_row.ems98_class, int(d), variant, *p) for d, p in zip(degrees, probs, strict=True)]
        table = pd.DataFrame(rows, columns=["damage_class", "degree", "variant", *STATE_COLUMNS])
        cls = classes[["structure_type", "ems98_class", "ems98_weaker"]]
        method, banded = s["method_zh"], True
    else:
        wide = matrix.pivot_table(index=["structure_class", "intensity"], columns="damage_state", values="probability")
        wide = wide.reindex(columns=list(STATES)).fillna(0.0).reset_index()
        wide.columns = ["damage_class", "degree", *STATE_COLUMNS]
        wide["degree"] = wide["degree"].astype(int)
        top = wide[wide["degree"] == wide["degree"].max()]  # above the matrix's last degree: its last row (J)
        extra = [top.assign(degree=d) for d in DEGREES if d > wide["degree"].max()]
        wide = pd.concat([wide, *extra], ignore_index=True)
        table = pd.concat([wide.assign(variant=v) for v in VARIANTS], ignore_index=True)
        table = table[["damage_class", "degree", "variant", *STATE_COLUMNS]]
        cls = classes[["structure_type", "structure_class", "weaker_class"]]
        method, banded = s["matrix_method_zh"], False
    cls = cls.set_axis(["structure_type", "damage_class", "weaker_damage_class"], axis=1)
    return Model(method, banded, table, cls, s["unknown_structure"], STATES.index(s["severe_from"]),
                 s["scale_note_zh"])  # fmt: skip


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(MODEL_DDL)
    con.execute(DAMAGE_DDL)
    con.execute(METHOD_DDL)


RECORD_SQL = """
INSERT INTO quake_damage
WITH b AS (
    SELECT e.priority, e.town_code, e.degree, coalesce(e.occupants, 0) AS occupants,
           CASE WHEN e.damage_class_weaker THEN coalesce(c.weaker_damage_class, u.weaker_damage_class)
                ELSE coalesce(c.damage_class, u.damage_class) END AS damage_class
    FROM quake_exposure e
    LEFT JOIN damage_classes c ON c.structure_type = e.structure_type
    CROSS JOIN (SELECT * FROM damage_classes WHERE structure_type = $unknown) u
    WHERE e.event_id = $eid AND e.kind = 'buildings' AND e.degree >= $felt
), m AS (
    SELECT damage_class, degree,
           max(list_position([s0, s1, s2, s3, s4], greatest(s0, s1, s2, s3, s4)))
               FILTER (WHERE variant = 'likely') AS likely,
           sum({severe}) FILTER (WHERE variant = 'low') AS p_low,
           sum({severe}) FILTER (WHERE variant = 'likely') AS p_likely,
           sum({severe}) FILTER (WHERE variant = 'high') AS p_high
    FROM quake_damage_model WHERE event_id = $eid GROUP BY ALL
)
SELECT $eid, b.priority, b.town_code, b.damage_class, b.degree, b.occupants, {states}[m.likely],
       m.p_low, m.p_likely, m.p_high
FROM b JOIN m ON m.damage_class = b.damage_class AND m.degree = least(b.degree, 12)
"""


def record(con: duckdb.DuckDBPyConnection, event_id: str, felt_from: int) -> None:
    """Replace the event's model table and per-building estimates (buildings at ≥ `felt_from`) in the quake store,
    from its rows of quake_exposure (inside the caller's transaction)."""
    m = model()
    for table in ("quake_damage_model", "quake_damage", "quake_damage_method"):
        con.execute(f"DELETE FROM {table} WHERE event_id = ?", [event_id])
    con.register("damage_model_frame", m.table)
    con.register("damage_classes", m.classes)
    try:
        con.execute("INSERT INTO quake_damage_model SELECT ?, * FROM damage_model_frame", [event_id])
        con.execute("INSERT INTO quake_damage_method VALUES (?, ?, ?)", [event_id, m.method_zh, m.banded])
        severe = " + ".join(STATE_COLUMNS[m.severe_from :])
        states = "[" + ", ".join(f"'{s}'" for s in STATES) + "]"
        con.execute(RECORD_SQL.format(severe=severe, states=states),
                    {"eid": event_id, "felt": felt_from, "unknown": m.unknown})  # fmt: skip
    finally:
        con.unregister("damage_model_frame")
        con.unregister("damage_classes")


Band = tuple[float, float, float]  # (lowest, most likely, highest)


@dataclass
class Area:
    """A town's (or the district's) buildings at ≥ the felt degree: per state and people, each a band."""

    name: str
    degree: int
    buildings: int
    people: float  # occupants of these buildings
    states: dict[str, Band] = field(default_factory=dict)
    severe: Band = (0.0, 0.0, 0.0)  # buildings at ≥ severe_from
    people_severe: Band = (0.0, 0.0, 0.0)  # Σ occupants × P(≥ severe_from)


@dataclass
class Estimate:
    method_zh: str
    banded: bool
    scale_note_zh: str
    severe_from: str
    towns: list[Area] = field(default_factory=list)
    total: Area | None = None


def _band(values: list[float]) -> Band:
    low, likely, high = values
    return (min(values), likely, max(values))


AREA_SQL = """
WITH g AS (
    SELECT {key} AS area, damage_class, degree, count(*) AS n FROM quake_damage WHERE event_id = $eid GROUP BY ALL
), s AS (
    SELECT g.area, m.variant, {sums} FROM g JOIN quake_damage_model m
      ON m.event_id = $eid AND m.damage_class = g.damage_class AND m.degree = least(g.degree, 12)
    GROUP BY ALL
), p AS (
    SELECT {key} AS area, max(degree) AS degree, count(*) AS buildings, sum(occupants) AS people,
           sum(occupants * p_severe_low) AS ps_low, sum(occupants * p_severe) AS ps_likely,
           sum(occupants * p_severe_high) AS ps_high
    FROM quake_damage WHERE event_id = $eid GROUP BY ALL
)
SELECT p.*, s.variant, {cols} FROM p JOIN s USING (area) ORDER BY p.degree DESC, p.area, s.variant
"""


def estimate(con: duckdb.DuckDBPyConnection, event_id: str) -> Estimate | None:
    """Per town and for the district, from the event's rows in the quake store (None: none recorded)."""
    got = con.execute("SELECT method_zh, banded FROM quake_damage_method WHERE event_id = ?", [event_id]).fetchone()
    if got is None:
        return None
    m = model()
    est = Estimate(got[0], bool(got[1]), m.scale_note_zh, STATES[m.severe_from])
    sums = ", ".join(f"sum(g.n * m.{c}) AS {c}" for c in STATE_COLUMNS)
    cols = ", ".join(f"s.{c}" for c in STATE_COLUMNS)
    names = towns()
    for key in ("town_code", "'全区'"):
        rows = con.execute(AREA_SQL.format(key=key, sums=sums, cols=cols), {"eid": event_id}).fetchall()
        areas: dict[str, dict] = {}
        for area, degree, n, people, p_lo, p_li, p_hi, variant, *states in rows:
            a = areas.setdefault(area, {"head": (degree, n, people, (p_lo, p_li, p_hi)), "v": {}})
            a["v"][variant] = states
        out = []
        for area, a in areas.items():
            degree, n, people, ps = a["head"]
            per = [a["v"][v] for v in VARIANTS]
            name = "全区" if key != "town_code" else names.get(area, area or "乡镇不明")
            out.append(Area(name, int(degree), int(n), float(people or 0),
                            {s: _band([float(p[i]) for p in per]) for i, s in enumerate(STATES)},
                            _band([float(sum(p[m.severe_from:])) for p in per]),
                            _band([float(x or 0) for x in ps])))  # fmt: skip
        if key == "town_code":
            est.towns = out
        else:
            est.total = out[0] if out else None
    return est


def band_zh(b: Band, unit: str) -> str:
    """「约 1,200–2,100 栋（最可能 1,600 栋）」; one decimal when the band stays under 10 (a few buildings: 0.4 is
    not 0); a single figure when the band is one number."""
    fmt = "{:,.1f}" if b[2] < 10 else "{:,.0f}"
    low, likely, high = (fmt.format(x) for x in b)
    if low == high:
        return f"约{likely}{unit}"
    return f"约{low}–{high}{unit}（最可能{likely}{unit}）"


PEOPLE_FROM_SQL = """
SELECT d.town_code, m.variant, sum(d.occupants * ({states})) AS people
FROM quake_damage d JOIN quake_damage_model m
  ON m.event_id = d.event_id AND m.damage_class = d.damage_class AND m.degree = least(d.degree, 12)
WHERE d.event_id = $eid GROUP BY ALL
"""


def people_from_state(con: duckdb.DuckDBPyConnection, event_id: str, state: str) -> dict[str, Band]:
    """Per town: the people in buildings estimated `state` or worse, Σ occupants × P(≥ state), a band over V
    (lowest, most likely, highest); towns without an estimated building are absent."""
    first = STATES.index(state)
    rows = con.execute(PEOPLE_FROM_SQL.format(states=" + ".join(f"m.{c}" for c in STATE_COLUMNS[first:])),
                       {"eid": event_id}).fetchall()  # fmt: skip
    per: dict[str, dict[str, float]] = {}
    for town, variant, people in rows:
        per.setdefault(town, {})[variant] = float(people or 0)
    return {t: _band([v.get(x, 0.0) for x in VARIANTS]) for t, v in per.items()}
