"""The shaking of an event at any point: epicentral distance, intensity, PGA and PGV.

Intensity comes from the long/short-axis attenuation relations of rules/reference/quake_attenuation.csv,
I = A + B·M + C·log(R + R0), with elliptical isoseismals along the fault's strike: a point at x km along the
strike and y km across it has the intensity I for which it lies on the ellipse of semi-axes Ra(I), Rb(I)
(the equivalent-radius method; solved by bisection, vectorised over all points). Without a strike the long
axis is used in every direction (rules/quake/response.yaml). R is the epicentral distance: the relations
have no depth term. The magnitude is the one the China Earthquake Networks Center reports (M), used as Ms.

The degree of an estimate follows the convention of rules/quake/response.yaml (`degree_convention`): an
attenuation estimate is the isoseismal it lies inside, the floor of the computed value (a point at 7.8 is inside
the Ⅶ isoseismal, outside the Ⅷ one); GB/T 17742-2020's rounding (Ⅶ = 6.5 ≤ I < 7.5) is for the instrumental
intensity computed from recorded motion only. Intensities are kept unrounded: a value is shown to 0.1 only after
its degree is taken, cut (not rounded) so that the figure shown never reads as the next degree.

PGA and PGV from the intensity follow GB/T 17742-2020 Appendix A (I_A = 3.17·lg PGA + 6.59,
I_V = 3.00·lg PGV + 9.77), the formula columns of rules/reference/quake_intensity_motion.csv.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from pipeline.formats.yaml_file import load_yaml
from pipeline.platform.paths import RULES_DIR

EARTH_RADIUS_KM = 6371.0
ROMAN = ["", "Ⅰ", "Ⅱ", "Ⅲ", "Ⅳ", "Ⅴ", "Ⅵ", "Ⅶ", "Ⅷ", "Ⅸ", "Ⅹ", "Ⅺ", "Ⅻ"]


@dataclass(frozen=True)
class Axis:
    a: float
    b: float
    c: float
    log_base: float
    r0: float

    def intensity(self, magnitude: float, r_km: np.ndarray) -> np.ndarray:
        return self.a + self.b * magnitude + self.c * np.log(r_km + self.r0) / math.log(self.log_base)

    def radius(self, magnitude: float, intensity: np.ndarray) -> np.ndarray:
        """The distance along this axis at which the relation gives `intensity` (0 inside the epicentral area)."""
        r = np.power(self.log_base, (intensity - self.a - self.b * magnitude) / self.c) - self.r0
        return np.maximum(r, 0.0)


@dataclass(frozen=True)
class Relation:
    relation_id: str
    long: Axis
    short: Axis
    source: str

    def epicentral(self, magnitude: float) -> float:
        return float(
            min(self.long.intensity(magnitude, np.zeros(1))[0], self.short.intensity(magnitude, np.zeros(1))[0])
        )


@cache
def response_settings(rules_dir: Path = RULES_DIR) -> dict:
    return load_yaml((rules_dir / "quake" / "response.yaml").read_text(encoding="utf-8"))


@cache
def relations(rules_dir: Path = RULES_DIR) -> dict[str, Relation]:
    with open(rules_dir / "reference" / "quake_attenuation.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    axes: dict[str, dict[str, Axis]] = {}
    sources: dict[str, str] = {}
    for r in rows:
        base = math.e if r["log_base"].strip() == "e" else float(r["log_base"])
        axes.setdefault(r["relation_id"], {})[r["axis"]] = Axis(
            float(r["A"]), float(r["B"]), float(r["C"]), base, float(r["R0_km"])
        )
        sources[r["relation_id"]] = r["source"]
    return {rid: Relation(rid, a["long"], a["short"], sources[rid]) for rid, a in axes.items()}


def district_relations() -> list[Relation]:
    return [relations()[rid] for rid in response_settings()["attenuation"]]


def distance_km(lon0: float, lat0: float, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Great-circle (haversine) distance from the epicentre."""
    p0, p = np.radians(lat0), np.radians(lat)
    dlat, dlon = p - p0, np.radians(lon - lon0)
    h = np.sin(dlat / 2) ** 2 + np.cos(p0) * np.cos(p) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0, 1)))


def along_across_km(lon0: float, lat0: float, lon: np.ndarray, lat: np.ndarray, strike_deg: float):
    """Distances along and across the strike (azimuth clockwise from north), on a local flat projection
    scaled to the great-circle distance."""
    east = np.radians(lon - lon0) * np.cos(np.radians((lat + lat0) / 2)) * EARTH_RADIUS_KM
    north = np.radians(lat - lat0) * EARTH_RADIUS_KM
    s = np.radians(strike_deg)
    along = east * np.sin(s) + north * np.cos(s)
    across = east * np.cos(s) - north * np.sin(s)
    flat = np.hypot(along, across)
    scale = np.where(flat > 0, distance_km(lon0, lat0, lon, lat) / np.where(flat > 0, flat, 1), 1.0)
    return along * scale, across * scale


def intensity_of(relation: Relation, magnitude: float, along: np.ndarray, across: np.ndarray | None) -> np.ndarray:
    """Intensity at points `along`/`across` the strike (km); `across` None: no strike, long-axis circles."""
    if across is None:
        return np.minimum(relation.long.intensity(magnitude, np.abs(along)), relation.epicentral(magnitude))
    x, y = np.abs(np.asarray(along, dtype=float)), np.abs(np.asarray(across, dtype=float))
    # A point at distance r lies on an ellipse whose semi-axes hold r between them (Rb ≤ r ≤ Ra): its intensity
    # is between what the short and the long axis give at r.
    r, top = np.hypot(x, y), relation.epicentral(magnitude)
    ends = relation.long.intensity(magnitude, r), relation.short.intensity(magnitude, r)
    lo = np.clip(np.minimum(*ends) - 1e-6, -2.0, top)
    hi = np.clip(np.maximum(*ends) + 1e-6, -2.0, top)
    return _ellipse_intensity(relation, magnitude, x, y, lo, hi)


def _ellipse_intensity(
    relation: Relation, magnitude: float, x: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """The I in [lo, hi] whose ellipse passes through (x, y): g(I) = (x/Ra)² + (y/Rb)² − 1 rises with I (the
    ellipse shrinks) and is convex, so Newton's method started at the bracket's top end comes down to the root
    without overshooting it; kept inside a bracket that every step narrows, to 1e-9 degree; each round works on
    the points not yet there only (7 rounds for nearly all points instead of 22 bisection steps)."""
    out = hi.copy()
    todo = np.arange(len(x))
    x, y, lo, hi, at = x.copy(), y.copy(), lo.copy(), hi.copy(), out.copy()
    la, sa = relation.long, relation.short
    for _ in range(200):  # bisection alone would need ~35 rounds from a bracket of ten degrees
        ra = np.maximum(la.radius(magnitude, at), 1e-9)
        rb = np.maximum(sa.radius(magnitude, at), 1e-9)
        g = (x / ra) ** 2 + (y / rb) ** 2 - 1.0
        inside = g <= 0  # on or inside the ellipse of `at`: the intensity is at least `at`
        lo, hi = np.where(inside, at, lo), np.where(inside, hi, at)
        dra = math.log(la.log_base) / la.c * (ra + la.r0)  # dRa/dI
        drb = math.log(sa.log_base) / sa.c * (rb + sa.r0)
        slope = -2 * x**2 / ra**3 * dra - 2 * y**2 / rb**3 * drb
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = at - g / slope
        # Past the bracket's end (a step from below the root, or rounding), the point just inside that end: the
        # next step then comes from above the root (or the bracket closes on it).
        step = np.where(np.isfinite(newton), np.clip(newton, lo + 1e-10, hi - 1e-10), (lo + hi) / 2)
        done = (np.abs(step - at) < 1e-10) | (hi - lo < 1e-9) | np.isnan(g)  # a point with no position: NaN
        out[todo[done]] = step[done]
        keep = ~done
        if not keep.any():
            break
        todo, x, y, lo, hi, at = todo[keep], x[keep], y[keep], lo[keep], hi[keep], step[keep]
    else:
        out[todo] = lo
    return out


def district_intensity(
    magnitude: float, lon0: float, lat0: float, lon: np.ndarray, lat: np.ndarray, strike: float | None
) -> np.ndarray:
    """The district's estimate: the larger intensity of its relations (response.yaml), unrounded (the degree is
    taken from this value, `degree`)."""
    if strike is None:
        along, across = distance_km(lon0, lat0, lon, lat), None
    else:
        along, across = along_across_km(lon0, lat0, lon, lat, strike)
    values = [intensity_of(r, magnitude, along, across) for r in district_relations()]
    return np.maximum.reduce(values)


# How each convention of response.yaml `degree_convention` turns an intensity into its degree.
CONVENTIONS = {
    "isoseismal_floor": lambda i: np.floor(i),  # the isoseismal the point lies inside
    "round_half_up": lambda i: np.floor(i + 0.5),  # GB/T 17742-2020: Ⅶ = 6.5 ≤ I < 7.5
}


def degree(intensity: float | np.ndarray, source: str = "attenuation"):
    """The degree of an intensity by the convention response.yaml gives for its `source` ("attenuation": an
    estimate of the relations, the floor; "instrumental": from recorded motion, GB/T 17742's rounding)."""
    convention = response_settings()["degree_convention"][source]["rule"]
    return np.clip(CONVENTIONS[convention](np.asarray(intensity, dtype=float)), 1, 12).astype(int)


def shown(intensity: float | np.ndarray):
    """An intensity as shown beside its degree: to 0.1, cut (6.96 is shown 6.9, inside Ⅵ, never 7.0)."""
    return np.floor(np.asarray(intensity, dtype=float) * 10 + 1e-9) / 10


def roman(d: int) -> str:
    return ROMAN[int(d)] if 1 <= int(d) <= 12 else "—"


def pga_ms2(intensity: np.ndarray) -> np.ndarray:
    """GB/T 17742-2020 A.5 inverted: PGA (m/s²) at an intensity."""
    return np.power(10.0, (np.asarray(intensity) - 6.59) / 3.17)


def pgv_ms(intensity: np.ndarray) -> np.ndarray:
    """GB/T 17742-2020 A.6 inverted: PGV (m/s) at an intensity."""
    return np.power(10.0, (np.asarray(intensity) - 9.77) / 3.00)


def isoseismal_radii(
    magnitude: float, relation: Relation, degrees: range = range(6, 12)
) -> dict[int, tuple[float, float]]:
    """Long and short semi-axes (km) of the isoseismal of each degree: the outer edge of its zone, where the
    relation gives exactly d (zone Ⅶ: 7 ≤ I < 8, the convention of `degree`)."""
    out = {}
    for d in degrees:
        edge = np.array([float(d)])
        ra, rb = relation.long.radius(magnitude, edge)[0], relation.short.radius(magnitude, edge)[0]
        if ra > 0:
            out[d] = (float(ra), float(rb))
    return out


def screen_radius_km(magnitude: float) -> float:
    """The long-axis radius (km), for `magnitude`, at which the larger of the district's relations gives the
    distance screen's degree less its margin (response.yaml `distance_screen`): 0 when no relation reaches it."""
    screen = response_settings()["distance_screen"]
    edge = np.array([float(screen["degree"]) - float(screen["margin_degree"])])
    return max(float(r.long.radius(magnitude, edge)[0]) for r in district_relations())
