"""The sample survey generator: layout, encodings, determinism, credit codes, defects."""

from __future__ import annotations

import collections
import csv
import io
from pathlib import Path

import openpyxl
import pytest

from pipeline.intake.credit_code import is_valid
from pipeline.registries.templates import KINDS, load_template, towns, units
from sample.generate import (
    DEFECT_KINDS,
    GBK_TOWNS,
    RESURVEY_ROUND,
    ROUND,
    STRUCTURE_MIX,
    USE_MIX,
    WJJ_MAPPING,
    generate,
)

SMALL = {"buildings": 300, "bridges": 30, "sites": 10, "pipelines": 10}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sample")
    return out, generate(out, **SMALL, seed=7)


def _rows(path: Path, encoding: str = "utf-8-sig") -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode(encoding))))


def test_files_follow_the_upload_layout(sample: tuple[Path, dict]) -> None:
    out, summary = sample
    files = [Path(f) for f in summary["files"]]
    assert files and all((out / f).is_file() for f in files)
    for f in files:
        kind, unit = f.parts[0], f.parts[1]
        assert kind in KINDS and unit in units()
        resurvey = f.parts[:2] == ("bridges", "ZJJ") and f.parts[2:] == (RESURVEY_ROUND, "桥梁复查.csv")
        assert f.parts[2:] == (ROUND, f.name) or f.parts[2:] == ("列映射.csv",) or resurvey
    by_unit = {(f.parts[0], f.parts[1]) for f in files}
    assert by_unit == {("buildings", "ZJJ"), ("buildings", "JYJ"), ("buildings", "WJJ"),
                       ("bridges", "ZJJ"), ("hazchem_sites", "YJJ"),
                       ("hazchem_inventory", "YJJ"), ("pipelines", "FGJ"), ("geohazards", "ZRJ"),
                       ("reservoirs", "SWJ"), ("water_supply", "SWJ"),
                       *(("shelters", f"T{code[-3:]}") for code in towns())}  # issue 29: each town its shelters  # fmt: skip
    town_files = [f for f in files if f.parts[:2] == ("buildings", "ZJJ")]
    assert len(town_files) == 13


def test_gbk_files_are_gbk_not_utf8(sample: tuple[Path, dict]) -> None:
    out, _ = sample
    for town in GBK_TOWNS:
        data = (out / "buildings" / "ZJJ" / ROUND / f"房屋建筑调查_{town}.csv").read_bytes()
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
        text = data.decode("gbk")
        assert text.lstrip().startswith("房屋编码") and town in text and "\r\n" in text


def test_xlsx_opens_with_openpyxl(sample: tuple[Path, dict]) -> None:
    out, summary = sample
    (xlsx,) = [f for f in summary["files"] if f.endswith(".xlsx")]
    sheet = openpyxl.load_workbook(out / xlsx, read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    headers = [h.strip() for h in rows[0]]  # str.strip() also drops the full-width space
    assert headers[0] == "房屋编码" and "建筑面积（㎡）" in headers and len(rows) > 1
    uses = {r[headers.index("房屋用途")] for r in rows[1:]}
    assert "学校" in uses and "住宅" not in uses
    assert all(isinstance(r[headers.index("地上层数")], int | str | None) for r in rows[1:])


def test_wjj_uses_its_own_column_names_and_a_saved_mapping(sample: tuple[Path, dict]) -> None:
    out, _ = sample
    mapping = _rows(out / "buildings" / "WJJ" / "列映射.csv")
    assert (out / "buildings" / "WJJ" / "列映射.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert mapping[0] == ["本单位列名", "模板列名"] and [tuple(r) for r in mapping[1:]] == list(WJJ_MAPPING)
    headers = {f.header for f in load_template("buildings").fields}
    assert {template for _, template in WJJ_MAPPING} <= headers
    (wjj,) = (out / "buildings" / "WJJ" / ROUND).iterdir()
    own = _rows(wjj)[0]
    assert "建筑物编号" in own and "房屋编码" not in own
    assert set(own) <= headers | {mine for mine, _ in WJJ_MAPPING}


def test_same_seed_gives_identical_csv_bytes(sample: tuple[Path, dict], tmp_path: Path) -> None:
    out, summary = sample
    again = generate(tmp_path / "again", **SMALL, seed=7)
    assert again["files"] == summary["files"] and again["defects"] == summary["defects"]
    for f in summary["files"]:
        if f.endswith(".csv"):
            assert (tmp_path / "again" / f).read_bytes() == (out / f).read_bytes(), f
    generate(tmp_path / "other", **SMALL, seed=8)
    first = summary["files"][0]
    assert (tmp_path / "other" / first).read_bytes() != (out / first).read_bytes()


def test_credit_codes_pass_gb32100_except_the_injected_typos(sample: tuple[Path, dict]) -> None:
    out, summary = sample
    sites = _rows(out / "hazchem_sites" / "YJJ" / ROUND / "危险化学品单位基本情况.csv")
    codes = [r[0] for r in sites[1:]]
    typos = [c for c in codes if not is_valid(c)]
    assert len(typos) == summary["defects_by_kind"]["hazchem_sites"].get("bad_check_digit", 0) >= 1
    assert all(c.startswith("9164030") and len(c) == 18 for c in codes)
    inventory = _rows(out / "hazchem_inventory" / "YJJ" / ROUND / "危险化学品储存明细.csv")
    unknown = {r[0] for r in inventory[1:]} - set(codes)
    assert len(unknown) == summary["defects_by_kind"]["hazchem_inventory"]["unknown_site"]
    assert all(is_valid(c) for c in unknown)  # well-formed, just not registered


def test_every_defect_kind_is_injected_at_about_the_rate(sample: tuple[Path, dict]) -> None:
    _, summary = sample
    assert all(summary["defects"][d] > 0 for d in DEFECT_KINDS), summary["defects"]
    share = summary["defective_rows"] / sum(summary["rows"].values())
    assert 0.015 <= share <= 0.06


def test_defect_share_matches_the_rate_on_a_bigger_csv_run(tmp_path: Path) -> None:
    summary = generate(tmp_path, buildings=5000, bridges=0, sites=0, pipelines=0, formats="csv",
                       defect_rate=0.05, more_kinds=False)  # fmt: skip
    assert summary["rows"] == {"buildings": 5000}
    assert summary["defective_rows"] == pytest.approx(250, abs=3)
    lines = 0
    for f in summary["files"]:
        data = (tmp_path / f).read_bytes()
        assert f.endswith(".csv") and not data.startswith(b"\xef\xbb\xbf") and b"\r" not in data
        lines += len(_rows(tmp_path / f, "utf-8")) - 1
    assert lines == 5000


def test_generator_tables_use_the_templates_values() -> None:
    tpl = load_template("buildings")
    uses, structures = set(tpl.field("use").values), set(tpl.field("structure_type").values)
    assert all(set(mix) <= uses for mix in USE_MIX.values())
    assert all(set(mix) <= structures for mix in STRUCTURE_MIX.values())


def _coordinates(out: Path, files: list[str]) -> list[tuple[float, float]]:
    """(lon, lat) of every row of a csv-format sample whose coordinates are numbers inside the templates'
    bounds (the planted out-of-district defects left out)."""
    points = []
    for f in files:
        if not f.endswith(".csv") or f.startswith(("pipelines", "hazchem_inventory")) or "列映射" in f:
            continue
        for row in csv.DictReader(io.StringIO((out / f).read_text(encoding="utf-8"))):
            try:
                lon, lat = float(row["经度"]), float(row["纬度"])
            except ValueError:
                continue
            if 105.9 <= lon <= 106.6 and 37.6 <= lat <= 38.1:
                points.append((lon, lat))
    return points


def test_generated_points_stay_inside_the_district_without_piling_up_on_its_edges(tmp_path: Path) -> None:
    """Issue 25 §8: clipped coordinates piled up on straight lines at the bounds (a town at the edge of the
    district); the points are drawn inside instead, none on or next to the bounds, none stacked on a line."""
    from sample.generate import LAT_RANGE, LON_RANGE

    summary = generate(tmp_path, formats="csv")  # the bundled sample's size and seed
    points = _coordinates(tmp_path, summary["files"])
    assert len(points) > 19_000
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    assert LON_RANGE[0] < min(lons) and max(lons) < LON_RANGE[1]
    assert LAT_RANGE[0] < min(lats) and max(lats) < LAT_RANGE[1]
    # a straight-line pile-up is many points sharing one coordinate value (the bound they were clipped to)
    stacked = max(max(collections.Counter(lons).values()), max(collections.Counter(lats).values()))
    assert stacked <= 5, stacked
