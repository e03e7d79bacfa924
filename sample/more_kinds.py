"""The sample's geological hazard points, emergency shelters, reservoirs and dykes and water supply (issue 29 §5),
seeded, in the templates' Chinese headers (clean files: the defects are the older kinds' business). The numbers
are in sample/tables/more_kinds.yaml; the shelters of a few towns fall short of the people they must shelter."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.registries.templates import load_template, towns

TABLES = yaml.safe_load((Path(__file__).parent / "tables" / "more_kinds.yaml").read_text(encoding="utf-8"))
PLACES = yaml.safe_load((Path(__file__).parent / "tables" / "places.yaml").read_text(encoding="utf-8"))
POPULATION = Path(__file__).resolve().parent.parent / "rules" / "reference" / "town_population.csv"
NEED_SHARE = 0.3  # rules/reference/shelter_need.csv
ROUND = "2023-1"
CODE_OF = {name: code for code, name in towns().items()}
TOWN_UNIT = {name: f"T{code[-3:]}" for code, name in towns().items()}  # reference/units.csv: T100 … T401


def _pick(rng: np.random.Generator, table: Mapping[str, float]) -> str:
    keys = list(table)
    p = np.array([table[k] for k in keys], dtype=float)
    return str(keys[rng.choice(len(keys), p=p / p.sum())])


def _near(rng: np.random.Generator, town: str, spread: float = 0.012) -> tuple[str, str]:
    lon, lat = PLACES["towns"][town][:2]
    return f"{lon + rng.normal(0, spread):.4f}", f"{lat + rng.normal(0, spread):.4f}"


def _date(rng: np.random.Generator, start: str, days: int) -> str:
    return str(np.datetime64(start) + int(rng.integers(0, days)))


def _yes(flag: bool) -> str:
    return "是" if flag else "否"


def _write(out: Path, kind: str, unit: str, name: str, rows: list[dict[str, Any]]) -> Path:
    t = load_template(kind)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([f.header for f in t.fields])
    for r in rows:
        w.writerow([r.get(f.key, "") for f in t.fields])
    path = out / kind / unit / ROUND / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue().encode("utf-8-sig"))
    return path


def geohazards(rng: np.random.Generator) -> list[dict[str, Any]]:
    g = TABLES["geohazards"]
    rows, seq = [], {}
    for _ in range(g["count"]):
        town = _pick(rng, g["towns"])
        seq[town] = seq.get(town, 0) + 1
        kind, stability = _pick(rng, g["types"]), _pick(rng, g["stability"])
        people = int(rng.lognormal(3.3, 1.1)) if rng.random() < 0.9 else 0
        grade = "大型" if people >= 500 else "中型" if people >= 100 else "小型"
        village = str(rng.choice(PLACES["villages"][town]))
        lasting = grade != "小型" and rng.random() < g["lasting_measure_if_medium"]
        monitored = rng.random() < g["monitored"]
        lon, lat = _near(rng, town, 0.02)
        rows.append({
            "point_id": f"DZ-{CODE_OF[town]}-{seq[town]:03d}", "name": f"{town}{village}{str(rng.choice(g['places']))}{kind}",
            "town_code": CODE_OF[town], "town_name": town, "village": f"{village}村", "lon": lon, "lat": lat,
            "hazard_type": kind, "volume_m3": str(int(rng.lognormal(9, 1))) if kind in ("滑坡", "崩塌", "不稳定斜坡") else "",
            "stability": stability, "threatened_households": str(int(people / 3.8)), "threatened_people": str(people),
            "threatened_property_wan": str(int(people * rng.uniform(4, 9))), "declared_grade": grade,
            "monitor": f"{rng.choice(['马', '王', '李', '杨', '丁'])}{rng.choice(['建国', '学军', '占林', '福祥'])}" if monitored else "无",
            "monitoring_method": ("专业监测" if grade != "小型" else "群测群防") if monitored else "无",
            "cards_issued": _yes(rng.random() < g["cards"]), "plan_and_route": _yes(rng.random() < g["plan"]),
            "measure": str(rng.choice(["工程治理", "搬迁避让"])) if lasting else "监测预警",
            "measure_state": str(rng.choice(["实施中", "已完成"])) if lasting else "实施中",
            "responsible_unit": TOWN_UNIT[town], "survey_date": _date(rng, "2023-05-01", 60),
            "surveyor": str(rng.choice(g["surveyor"])),
        })  # fmt: skip
    big = next(r for r in rows if r["town_name"] == "扁担沟镇" and r["stability"] == "不稳定")
    big.update(
        threatened_people="620",
        threatened_households="160",
        threatened_property_wan="3100",
        declared_grade="大型",
        measure="工程治理",
        measure_state="实施中",
    )  # one 大型 slope above a village (G06)
    return rows


def shelters(rng: np.random.Generator) -> dict[str, list[dict[str, Any]]]:
    """Per town (its own clerk uploads them): shelters whose capacity adds up to the town's target share."""
    s = TABLES["shelters"]
    with open(POPULATION, encoding="utf-8") as f:
        population = {r["town_name"]: int(r["population"]) for r in csv.DictReader(f)}
    out = {}
    for town, (n, ratio) in s["towns"].items():
        total = population[town] * NEED_SHARE * ratio
        parts = rng.dirichlet(np.ones(n) * 4) * total
        rows = []
        for i, cap in enumerate(parts, start=1):
            cls = _pick(rng, s["classes"])
            cap = int(round(cap, -1))
            over = rng.random() < s["over_claim"]
            area = cap * s["area_per_person"][cls] * (rng.uniform(0.6, 0.9) if over else rng.uniform(1.0, 1.25))
            site = _pick(rng, s["sites"])
            lon, lat = _near(rng, town)
            village = str(rng.choice(PLACES["villages"][town]))
            label = {"学校操场": "学校", "广场": "广场", "公园绿地": "公园", "体育场馆": "体育馆", "其他": "空地"}[site]
            row = {
                "shelter_id": f"BN-{CODE_OF[town]}-{i:02d}", "name": f"{town}{village}{label}应急避难场所",
                "town_code": CODE_OF[town], "town_name": town, "village": f"{village}村", "lon": lon, "lat": lat,
                "shelter_class": cls, "site_type": site, "effective_area_m2": str(int(area)), "capacity_people": str(cap),
                "signs": _yes(rng.random() >= s["no_signs"]), "on_fault": "否", "on_geohazard": "否",
                "flood_or_liquefaction": _yes(rng.random() < 0.1),
                "condition": "差" if rng.random() < s["poor"] else str(rng.choice(["良好", "一般"])),
                "manager": f"{town}人民政府" if "园区" not in town else f"{town}管委会",
                "design_intensity": s["design_intensity"][(i - 1) % len(s["design_intensity"])],
                "responsible_unit": TOWN_UNIT[town], "survey_date": _date(rng, "2023-04-10", 60),
                "surveyor": str(rng.choice(s["surveyor"])),
            }  # fmt: skip
            for key in ("water", "power", "toilets", "sewage", "supplies"):
                row[key] = _yes(rng.random() >= s["facility_missing"])
            rows.append(row)
        out[town] = rows
    out["扁担沟镇"][0]["on_geohazard"] = "是"  # the hill town's only shelter sits by a slope (E01; not counted)
    claimed = out["金星镇"][0]  # a capacity declared above what its area holds (E04; counted at the area's)
    claimed["effective_area_m2"] = str(
        int(int(claimed["capacity_people"]) * s["area_per_person"][claimed["shelter_class"]] * 0.8)
    )
    return out


def reservoirs(rng: np.random.Generator) -> list[dict[str, Any]]:
    rows, seq = [], {}
    for name, typ, town, storage, cls, appraised, reinforced, defects, people, plan, check, year in TABLES[
        "reservoirs"
    ]:
        seq[town] = seq.get(town, 0) + 1
        lon, lat = _near(rng, town, 0.015)
        rows.append({
            "object_id": f"SK-{CODE_OF[town]}-{seq[town]:02d}", "name": name, "object_type": typ,
            "town_code": CODE_OF[town], "town_name": town, "lon": lon, "lat": lat, "river": "",
            "storage_10k_m3": str(storage) if typ == "水库" else "", "dam_type": "土石坝" if typ == "水库" else "",
            "dam_height_m": str(int(rng.integers(8, 25))) if typ == "水库" else "",
            "dyke_length_km": "" if typ == "水库" else f"{rng.uniform(5, 30):.1f}",
            "dyke_grade": "" if typ == "水库" else "4", "year_built": str(year), "safety_class": cls,
            "last_appraisal": appraised, "reinforced": reinforced, "hidden_defects": defects,
            "downstream_people": str(people), "emergency_plan": plan, "seismic_check": check,
            "responsible_unit": "SWJ", "survey_date": _date(rng, "2023-06-01", 40), "surveyor": "杨帆",
        })  # fmt: skip
    return rows


def water_supply(rng: np.random.Generator) -> list[dict[str, Any]]:
    rows, seq = [], {}
    for (name, typ, town, served, people, material, dia, km, year, design, fault, liq, plan,
         backup) in TABLES["water_supply"]:  # fmt: skip
        seq[town] = seq.get(town, 0) + 1
        lon, lat = _near(rng, town, 0.01)
        rows.append({
            "facility_id": f"GS-{CODE_OF[town]}-{seq[town]:02d}", "name": name, "facility_type": typ,
            "town_code": CODE_OF[town], "town_name": town, "towns_served": served, "lon": lon, "lat": lat,
            "capacity_10k_m3_d": f"{people / 25000:.1f}" if typ == "水厂" else "", "people_served": str(people),
            "pipe_material": material, "diameter_mm": str(dia), "length_km": str(km), "year_built": str(year),
            "seismic_design": design, "crosses_fault": fault, "liquefiable_site": liq, "emergency_plan": plan,
            "backup_source": backup, "responsible_unit": "SWJ", "survey_date": _date(rng, "2023-06-15", 40),
            "surveyor": "杨帆",
        })  # fmt: skip
    return rows


def generate(out: Path, seed: int) -> tuple[list[Path], dict[str, int]]:
    """Write the four kinds' files under `out`; returns the files and the rows per kind."""
    rng = np.random.default_rng([seed, 29])  # its own stream: the older kinds' draws are unchanged
    files, rows = [], {}
    geo = geohazards(rng)
    files.append(_write(out, "geohazards", "ZRJ", "地质灾害隐患点调查", geo))
    by_town = shelters(rng)
    for town, town_rows in by_town.items():
        files.append(_write(out, "shelters", TOWN_UNIT[town], f"{town}应急避难场所调查", town_rows))
    res, water = reservoirs(rng), water_supply(rng)
    files.append(_write(out, "reservoirs", "SWJ", "水库堤防调查", res))
    files.append(_write(out, "water_supply", "SWJ", "供水设施调查", water))
    rows = {"geohazards": len(geo), "shelters": sum(len(r) for r in by_town.values()), "reservoirs": len(res),
            "water_supply": len(water)}  # fmt: skip
    return files, rows
