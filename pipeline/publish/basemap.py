"""The district's outline under every map, and town labels that do not overlap.

The outline (利通区 and the county-level divisions around it) is a GeoJSON kept in the repository,
`reference/boundaries/litong.geojson`, with its source, licence and the checks made on it in `source.md`
beside it; nothing is downloaded. It is read once per process. No licensed source of the towns' (乡镇)
boundaries was found (source.md says why), so towns are labels at their centres (`labels.TownLabels`).

The outline is OpenStreetMap data (ODbL): every map that draws it carries the attribution `CREDIT`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from pipeline.platform.paths import REFERENCE_DIR
from pipeline.publish.style import MUTED

BOUNDARIES_FILE = REFERENCE_DIR / "boundaries" / "litong.geojson"
CREDIT = "行政界线仅为示意 © OpenStreetMap 贡献者（ODbL）"  # the licence's attribution; unverified (source.md)
DISTRICT_FILL, DISTRICT_EDGE, NEIGHBOUR_EDGE = "#f3f0e6", "#4d4d4d", "#b5b5b5"


@dataclass(frozen=True)
class Area:
    """One county-level division: its name, code, role (`district` or `neighbour`) and rings (n×2 lon/lat,
    each closed: the last vertex repeats the first)."""

    name: str
    adcode: str
    role: str
    rings: tuple[np.ndarray, ...]

    @property
    def vertex_count(self) -> int:
        return sum(len(r) for r in self.rings)


@lru_cache(maxsize=4)
def areas(path: Path = BOUNDARIES_FILE) -> tuple[Area, ...]:
    """The divisions in the reference file, the district first."""
    collection = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for feature in collection["features"]:
        props, geometry = feature["properties"], feature["geometry"]
        polygons = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
        rings = tuple(np.asarray(ring, dtype=float) for polygon in polygons for ring in polygon)
        out.append(Area(props["name"], str(props["adcode"]), props["role"], rings))
    out.sort(key=lambda a: a.role != "district")
    return tuple(out)


def district(path: Path = BOUNDARIES_FILE) -> Area:
    return next(a for a in areas(path) if a.role == "district")


def _path(area: Area):
    from matplotlib.path import Path as MplPath

    return MplPath.make_compound_path(*(MplPath(ring, closed=True) for ring in area.rings))


def contains(lon: Sequence[float], lat: Sequence[float], path: Path = BOUNDARIES_FILE) -> np.ndarray:
    """Whether each point lies inside the district's outline."""
    points = np.column_stack([np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)])
    return _path(district(path)).contains_points(points)


def draw_outline(ax, neighbours: bool = True, credit: bool = True, path: Path = BOUNDARIES_FILE):
    """The district filled and outlined under everything else on `ax` (longitude/latitude axes), the
    neighbouring divisions as thin grey lines, and the licence's attribution in the lower left corner.
    The district counts in the axes' automatic limits; the neighbours do not (they would zoom the map out
    to half of Ningxia). Returns the district's patch."""
    from matplotlib.patches import PathPatch

    patch = None
    for area in areas(path):
        if area.role == "district":
            patch = PathPatch(_path(area), facecolor=DISTRICT_FILL, edgecolor=DISTRICT_EDGE, lw=1.2, zorder=0.6,
                              gid="basemap-district", label="区界")  # fmt: skip
            ax.add_patch(patch)
        elif neighbours:
            ax.add_artist(PathPatch(_path(area), facecolor="none", edgecolor=NEIGHBOUR_EDGE, lw=0.6, zorder=0.5,
                                    gid=f"basemap-neighbour-{area.adcode}"))  # fmt: skip
    if credit:
        ax.text(0.005, 0.005, CREDIT, transform=ax.transAxes, ha="left", va="bottom", fontsize=6, color=MUTED,
                gid="basemap-credit", zorder=6)  # fmt: skip
    return patch
