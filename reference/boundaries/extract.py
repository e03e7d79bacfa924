"""Rebuild litong.geojson from the mapchina R package's data (see source.md): a maintainer's one-off step, never
run by the pipeline. Needs the package's data/china.rda and the `rdata` reader, which the project does not
install:

    uv run --no-project --with rdata==1.1.0 python reference/boundaries/extract.py china.rda

Keeps 利通区 (adcode 640302) and the county-level divisions whose extent meets the box around it that the
earthquake maps show, rounded to 1e-5° (about a metre). The source's polygons are already coarse (利通区: 93
vertices), so nothing is simplified."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

DISTRICT = "640302"
BOX = (105.5, 37.2, 106.9, 38.5)  # lon/lat the neighbours must reach into: about 60 km around the district
OUT = Path(__file__).with_name("litong.geojson")


def _rings(geometry: list) -> list[list[list[list[float]]]]:
    """sf MULTIPOLYGON (a list of polygons, each a list of n×2 rings) as GeoJSON coordinates."""
    return [[[[round(float(x), 5), round(float(y), 5)] for x, y in ring] for ring in polygon] for polygon in geometry]


def main(rda: str) -> None:
    import rdata

    warnings.simplefilter("ignore")  # the reader warns about every sf class it has no constructor for
    china = rdata.conversion.convert(rdata.parser.parse_file(rda), default_encoding="utf-8")["china"]
    features = []
    for _, row in china.iterrows():
        coords = _rings(row["geometry"])
        xs = [p[0] for poly in coords for ring in poly for p in ring]
        ys = [p[1] for poly in coords for ring in poly for p in ring]
        code = str(row["Code_County"])
        near = min(xs) < BOX[2] and max(xs) > BOX[0] and min(ys) < BOX[3] and max(ys) > BOX[1]
        if code == DISTRICT or (near and str(row["Code_Province"]) == "64"):
            role = "district" if code == DISTRICT else "neighbour"
            features.append({"type": "Feature", "properties": {"name": str(row["Name_County"]), "adcode": code,
                             "role": role}, "geometry": {"type": "MultiPolygon", "coordinates": coords}})  # fmt: skip
    features.sort(key=lambda f: (f["properties"]["role"] != "district", f["properties"]["adcode"]))
    collection = {"type": "FeatureCollection", "features": features}
    OUT.write_text(json.dumps(collection, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(OUT, OUT.stat().st_size, "bytes,", len(features), "features")


if __name__ == "__main__":
    main(sys.argv[1])
