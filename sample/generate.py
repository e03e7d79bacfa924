"""Seeded generator of a realistic sample survey of 利通区 (Wuzhong, Ningxia).

Writes `<out>/<kind>/<UNIT>/<ROUND>/<file>` in the templates' Chinese headers (from
`schemas/*.yaml`): buildings, bridges, hazardous-chemical sites with their inventory, and
oil/gas pipeline segments, plus a deterministic share of defective rows of every kind the
validation catches, counted in the returned summary.

    python -m sample.generate --out data_raw --buildings 20000 --seed 2023

`formats="mixed"` writes what Excel really produces (UTF-8 with BOM and CRLF, GBK, plain
UTF-8, an XLSX, headers with full-width brackets and stray spaces, one department file with
its own column names and a saved column mapping). `formats="csv"` writes every file as
plain UTF-8 CSV with the template headers; the content (values, defects) is the same.

The names, places and mixes are data, in `sample/tables/*.yaml`; this module is the code.
Columns are Arrow arrays, dictionary-encoded when repetitive, so a million buildings take
seconds, not minutes.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.intake.credit_code import CHARSET, check_char, is_valid
from pipeline.registries.templates import Template, load_template, towns
from sample import more_kinds as more_kinds_sample
from sample.tables import load

Rng = np.random.Generator

ROUND = "2023-1"
SURVEY_FIRST = np.datetime64("2023-03-01")
SURVEY_DAYS = 214  # 2023-03-01 .. 2023-09-30
DATE_VOCAB = np.datetime_as_string(SURVEY_FIRST + np.arange(SURVEY_DAYS), unit="D")
LON_RANGE, LAT_RANGE = (105.93, 106.57), (37.65, 38.07)  # inside the templates' bounds
SCATTER_SIGMAS = 3.0  # a generated point is within this many spreads of its centre (an ellipse, no straight edge)

# ---------------------------------------------------------------------------------------
# The tables (sample/tables/*.yaml): what each name means is said in its file
# ---------------------------------------------------------------------------------------
PLACES, NAMES, BUILDINGS, BRIDGES = load("places"), load("names"), load("buildings"), load("bridges")
HAZCHEM, PIPELINES, FILES, DEFECTS = load("hazchem"), load("pipelines"), load("files"), load("defects")

TOWN_LAYOUT = PLACES["towns"]  # town: [centre lon, centre lat, share of buildings, urban share]
CORE_TOWNS, HILLY_TOWNS, TOWN_SHORT = PLACES["core_towns"], PLACES["hilly_towns"], PLACES["town_short"]
INDUSTRIAL_PARKS, VILLAGES, COMMUNITIES = PLACES["industrial_parks"], PLACES["villages"], PLACES["communities"]
STREETS, ESTATES, WATERWAYS = PLACES["streets"], PLACES["estates"], PLACES["waterways"]
SURNAMES, GIVEN_NAMES, COMPANY_ROOTS = NAMES["surnames"], NAMES["given_names"], NAMES["company_roots"]
INDUSTRIES, OFFICES, NUMERALS, REMARKS = NAMES["industries"], NAMES["offices"], NAMES["numerals"], NAMES["remarks"]

EDU_SHARE, MED_SHARE = BUILDINGS["edu_share"], BUILDINGS["med_share"]
USE_MIX, STRUCTURE_MIX, USE_SIZE = BUILDINGS["use_mix"], BUILDINGS["structure_mix"], BUILDINGS["use_size"]
FLOORS, YEARS = BUILDINGS["floors"], BUILDINGS["years"]
ENGINEERED, MASONRY, TRADITIONAL = BUILDINGS["engineered"], BUILDINGS["masonry"], BUILDINGS["traditional"]
SCHOOL_KINDS, MED_KINDS = BUILDINGS["school_kinds"], BUILDINGS["med_kinds"]
SCHOOL_LABELS, KG_LABELS = BUILDINGS["school_labels"], BUILDINGS["kg_labels"]
HOSPITAL_LABELS, DISTRICT_HOSPITALS = BUILDINGS["hospital_labels"], BUILDINGS["district_hospitals"]
DAMAGE_RATE, SELF_BUILT_MIX = BUILDINGS["damage_rate"], BUILDINGS["self_built_finding"]

BRIDGE_SIZES, ROUTE_CLASSES, CROSSINGS = BRIDGES["sizes"], BRIDGES["route_classes"], BRIDGES["crossings"]

CATEGORY_Q = {k: float(v) for k, v in HAZCHEM["category_q"].items()}
CATEGORY_BETA = {k: float(v) for k, v in HAZCHEM["category_beta"].items()}
NAMED_TOXIC, STORAGE_UNIT_SUFFIXES = HAZCHEM["named_toxic"], tuple(HAZCHEM["storage_unit_suffixes"])
SITE_FLAGS, BUILDING_GRADE, GRADES = HAZCHEM["site_flags"], HAZCHEM["building_grade"], HAZCHEM["grades"]

LOCATION_CLASS, OIL_HCA = PIPELINES["location_class"], PIPELINES["oil_hca"]
FAULT_CROSSINGS = tuple(map(tuple, PIPELINES["fault_crossings"]))  # (offset m, designed or verified), planted in order

GBK_TOWNS, PLAIN_UTF8_TOWNS, REMARK_TOWNS = FILES["gbk_towns"], FILES["plain_utf8_towns"], FILES["remark_towns"]
VARIANT_HEADER_TOWNS, NO_TOWN_NAME_TOWNS = FILES["variant_header_towns"], FILES["no_town_name_towns"]
TOWN_STYLES, HEADER_VARIANTS = FILES["town_styles"], FILES["header_variants"]
WJJ_MAPPING = tuple(map(tuple, FILES["wjj_mapping"]))  # (own header, template header)

DEFECT_KINDS = tuple(DEFECTS["kinds"])
DEFECT_WEIGHTS = {kind: {d: float(w) for d, w in ws.items()} for kind, ws in DEFECTS["weights"].items()}
DEFECT_MUSTS = {"buildings": tuple(DEFECT_WEIGHTS["buildings"]), **DEFECTS["musts"]}
MISSING_COLUMNS, MISSING_MARKERS = DEFECTS["missing_columns"], DEFECTS["missing_markers"]
NON_NUMERIC, OUT_OF_RANGE, NOT_ALLOWED = DEFECTS["non_numeric"], DEFECTS["out_of_range"], DEFECTS["not_allowed"]
OUTSIDE_COORDS, UNKNOWN_TOWN_CODES = DEFECTS["outside_coords"], DEFECTS["unknown_town_codes"]
UNKNOWN_UNITS, BAD_DATES = DEFECTS["unknown_units"], DEFECTS["bad_dates"]
AFTER_SURVEY_YEARS = DEFECTS["after_survey_years"]


@dataclass(frozen=True)
class Chemical:
    cas: str
    category: str
    named_q: float | None = None  # critical quantity when named in GB 18218 table 1
    named_beta: float | None = None  # correction factor of the named toxic gases
    mixture: bool = False  # CAS often left as "/" on the form

    @property
    def q(self) -> float:
        return self.named_q if self.named_q is not None else CATEGORY_Q[self.category]

    @property
    def beta(self) -> float:
        return self.named_beta or CATEGORY_BETA.get(self.category, 1.0)


@dataclass(frozen=True)
class Archetype:
    weight: float
    site_kind: str
    in_park: bool
    names: tuple[str, ...]  # {root} and {town} are filled in
    stock: tuple[tuple[str, float, float, float, str], ...]  # chemical, min t, max t, p, unit


@dataclass(frozen=True)
class PipelineLine:
    name: str
    prefix: str
    operator: str
    operator_code: str
    medium: str
    material: str
    steel_grade: str
    diameter_mm: float
    wall_mm: float
    pressure_mpa: float
    year: int
    path: tuple[tuple[float, float], ...]  # polyline across the district
    town_names: bool = False  # this operator lists towns by name, separated by "、"


@dataclass(frozen=True)
class FileSpec:
    """One department file: how its Excel saved it (formats="mixed")."""

    unit: str
    name: str  # file name without extension
    encoding: str = "utf-8-sig"
    newline: str = "\r\n"
    xlsx: bool = False
    header_variant: bool = False  # full-width brackets, units, stray spaces
    mapping: tuple[tuple[str, str], ...] = ()  # (own header, template header)
    drop: tuple[str, ...] = ()  # template columns the department's sheet does not have
    styles: tuple[str, ...] = ()  # value spellings (content: kept in formats="csv")
    remarks: bool = False  # an extra 备注 column


CHEMICALS = {name: Chemical(**c) for name, c in HAZCHEM["chemicals"].items()}
SITE_ARCHETYPES = {
    kind: Archetype(a["weight"], a["site_kind"], a["in_park"], tuple(a["names"]), tuple(map(tuple, a["stock"])))
    for kind, a in HAZCHEM["archetypes"].items()
}
PIPELINE_LINES = tuple(PipelineLine(**{**p, "path": tuple(map(tuple, p["path"]))}) for p in PIPELINES["lines"])


# =======================================================================================
# numpy helpers (numpy string arrays are fine for comparisons, slow to concatenate)
# =======================================================================================
def _pick(rng: Rng, table: Mapping[str, float], n: int) -> np.ndarray:
    """n draws from a {value: weight} table."""
    keys = np.array(list(table))
    p = np.fromiter(table.values(), float)
    return keys[rng.choice(len(keys), size=n, p=p / p.sum())]


def _choice(rng: Rng, values: Sequence[str], n: int) -> np.ndarray:
    return np.array(values)[rng.integers(0, len(values), n)]


def _one(rng: Rng, table: Mapping[str, float]) -> str:
    """One draw from a {value: probability} table whose probabilities sum to 1."""
    return str(rng.choice(list(table), p=list(table.values())))


def _tri_int(rng: Rng, lo: Any, mode: Any, hi: Any) -> np.ndarray:
    """Integers in [lo, hi] from a triangular distribution peaking at mode."""
    lo, mode, hi = (np.asarray(a, float) for a in (lo, mode, hi))
    x = rng.triangular(lo, np.clip(mode, lo, hi + 1), hi + 1)
    return np.minimum(np.floor(x), hi).astype(np.int64)


def _cat(*parts: Any) -> np.ndarray:
    """Element-wise concatenation of numpy strings and scalars (for small arrays)."""
    out = np.asarray(parts[0]).astype(str)
    for part in parts[1:]:
        out = np.strings.add(out, np.asarray(part).astype(str))
    return out


def _num(x: Any, decimals: int = 1) -> np.ndarray:
    """Numbers as strings, without a trailing `.0`."""
    x = np.round(np.asarray(x, float), decimals)
    return np.where(x == np.floor(x), x.astype(np.int64).astype(str), x.astype(str))


def _num1(x: float, decimals: int = 2) -> str:
    return str(_num([x], decimals)[0])


def _strings(n: int, values: Sequence[str]) -> np.ndarray:
    """An empty numpy string array wide enough for values."""
    return np.full(n, "", dtype=f"<U{max(map(len, values))}")


def _codes(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dictionary-encode a repetitive numpy string array: (int32 codes, sorted vocabulary)."""
    if len(a) == 0:
        return np.zeros(0, np.int32), np.array([""])
    vocab = np.unique(a[:: max(1, len(a) // 4096)])
    idx = np.minimum(np.searchsorted(vocab, a), len(vocab) - 1)
    miss = vocab[idx] != a
    if miss.any():
        vocab = np.union1d(vocab, a[miss])
        idx = np.searchsorted(vocab, a)
    return idx.astype(np.int32), vocab


def _lookup(keys: np.ndarray, table: Mapping[str, Any], default: Any = None) -> np.ndarray:
    """table[key] for every key, looked up once per distinct key."""
    if not len(keys):
        return np.zeros(0)
    codes, vocab = _codes(keys)
    values = [table[k] if default is None else table.get(k, default) for k in map(str, vocab)]
    return np.array(values)[codes]


def _in(a: np.ndarray, values: Sequence[str]) -> np.ndarray:
    """np.isin for a few strings: comparisons, not a sort."""
    return np.logical_or.reduce([a == v for v in values]) if len(values) else np.zeros(len(a), bool)


def _yes(mask: np.ndarray) -> np.ndarray:
    return np.where(mask, "是", "否")


def _names(rng: Rng, n: int) -> np.ndarray:
    return _cat(_choice(rng, SURNAMES, n), _choice(rng, GIVEN_NAMES, n))


def _team(rng: Rng, size: int) -> np.ndarray:
    return np.unique(_names(rng, size * 2))[:size]


def _town_tables() -> tuple[list[str], list[str], np.ndarray]:
    """Town codes and names (reference/towns.csv order) and their layout rows."""
    codes = list(towns())
    names = [towns()[c] for c in codes]
    return codes, names, np.array([TOWN_LAYOUT[n] for n in names])


def _town_draw(rng: Rng, n: int) -> np.ndarray:
    layout = _town_tables()[2]
    return rng.choice(len(layout), size=n, p=layout[:, 2] / layout[:, 2].sum())


def _scatter(rng: Rng, centre: np.ndarray, sigma: Any) -> tuple[np.ndarray, np.ndarray]:
    """Points around centres (n×2 lon/lat), inside the district without clipping (clipped points piled up
    on the bounds' straight edges): a normal spread, made narrower for a centre near the bounds so that its
    ellipse of SCATTER_SIGMAS spreads fits inside them, and a point drawn beyond that ellipse drawn again.
    The main draws are the same as before; the redraws come from a generator seeded by them, so the rest of
    the sample (every value but these coordinates) does not change."""
    n = len(centre)
    sd = np.broadcast_to(np.asarray(sigma, dtype=float), n)
    d_lon, d_lat = rng.normal(0, 1, n), rng.normal(0, 0.8, n)  # in spreads of longitude (latitude: 0.8 of one)
    side = np.random.default_rng(np.frombuffer(np.r_[d_lon, d_lat].tobytes(), dtype=np.uint32)[:64])
    outside = d_lon**2 + (d_lat / 0.8) ** 2 > SCATTER_SIGMAS**2
    while outside.any():
        d_lon[outside], d_lat[outside] = side.normal(0, 1, int(outside.sum())), side.normal(0, 0.8, int(outside.sum()))
        outside = d_lon**2 + (d_lat / 0.8) ** 2 > SCATTER_SIGMAS**2
    room_lon = np.minimum(centre[:, 0] - LON_RANGE[0], LON_RANGE[1] - centre[:, 0]) / (SCATTER_SIGMAS * sd)
    room_lat = np.minimum(centre[:, 1] - LAT_RANGE[0], LAT_RANGE[1] - centre[:, 1]) / (SCATTER_SIGMAS * 0.8 * sd)
    fit = np.minimum(1.0, np.minimum(room_lon, room_lat))
    lon = centre[:, 0] + d_lon * sd * fit
    lat = centre[:, 1] + d_lat * sd * fit
    return np.round(lon, 6), np.round(lat, 6)


def _campaign_days(rng: Rng, n: int, start: int, length: int) -> np.ndarray:
    return np.minimum(start + rng.integers(0, length, n), SURVEY_DAYS - 1)


# =======================================================================================
# Arrow helpers and the Frame (one kind's rows)
# =======================================================================================
def _indexed(idx: Any, vocab: Sequence[Any]) -> pa.DictionaryArray:
    codes = pa.array(np.asarray(idx, np.int32))
    return pa.DictionaryArray.from_arrays(codes, pa.array([str(v) for v in vocab], pa.string()))


def _col(x: Any, n: int = 0) -> pa.Array:
    """A column as an Arrow array: numpy strings dictionary-encoded, numbers kept numeric."""
    if isinstance(x, pa.ChunkedArray):
        return x.combine_chunks()
    if isinstance(x, pa.Array):
        return x
    if isinstance(x, str):
        return _indexed(np.zeros(n, np.int32), [x])
    a = np.asarray(x)
    if a.dtype.kind == "U":
        return _indexed(*_codes(a))
    if a.dtype.kind == "O":
        return pa.array(["" if v is None else str(v) for v in a], pa.string())
    return pa.array(a, from_pandas=True)


def _text(x: Any) -> pa.Array:
    """A column as Arrow strings, blanks for nulls."""
    a = _col(x)
    if pa.types.is_dictionary(a.type):
        a = a.dictionary_decode()
    if not pa.types.is_string(a.type):
        a = pc.cast(a, pa.string())
    return pc.fill_null(a, "")


def _arg(x: Any) -> Any:
    return x if isinstance(x, str) else _text(x)


def _join(*parts: Any) -> pa.Array:
    return pc.binary_join_element_wise(*map(_arg, parts), "")


def _if(mask: np.ndarray, a: Any, b: Any) -> pa.Array:
    return pc.if_else(pa.array(np.asarray(mask, bool)), _arg(a), _arg(b))


def _vmap(a: np.ndarray, fn: Callable[[str], str]) -> pa.DictionaryArray:
    """fn applied to a repetitive string array, once per distinct value."""
    codes, vocab = _codes(a)
    return _indexed(codes, [fn(str(v)) for v in vocab])


def _draw(rng: Rng, values: Sequence[str], n: int) -> pa.DictionaryArray:
    return _indexed(rng.integers(0, len(values), n), values)


def _masked(values: np.ndarray, blank: np.ndarray) -> pa.Array:
    """Numbers with blanks (nulls) where blank is true."""
    return pa.array(values, mask=np.asarray(blank, bool))


def _parts(x: Any, n: int) -> tuple[np.ndarray, list[str]]:
    """(codes, vocabulary) of a dictionary array, a repetitive numpy string array or a string."""
    if isinstance(x, str):
        return np.zeros(n, np.int64), [x]
    if isinstance(x, pa.DictionaryArray):
        return x.indices.to_numpy(zero_copy_only=False).astype(np.int64), x.dictionary.to_pylist()
    codes, vocab = _codes(np.asarray(x))
    return codes.astype(np.int64), [str(v) for v in vocab]


def _combo(*parts: Any) -> pa.DictionaryArray:
    """Element-wise join of repetitive columns, done on their vocabularies: the million rows
    only carry codes (mixed-radix over the parts), never a copied string."""
    n = next(len(p) for p in parts if not isinstance(p, str))
    split = [_parts(p, n) for p in parts]
    codes = np.zeros(n, np.int64)
    for c, vocab in split:
        codes = codes * len(vocab) + c
    size = int(np.prod([len(v) for _, v in split], dtype=float))
    used = np.arange(size) if size <= 100_000 else np.unique(codes)
    words = [""] * len(used)
    rest = used.copy()
    for _, vocab in reversed(split):
        digit, rest = rest % len(vocab), rest // len(vocab)
        words = [vocab[d] + w for d, w in zip(digit, words, strict=True)]
    return _indexed(codes if size <= 100_000 else np.searchsorted(used, codes), words)


def _choose(conds: Sequence[np.ndarray], choices: Sequence[Any], default: Any) -> pa.DictionaryArray:
    """np.select over repetitive columns: the vocabularies are stacked, the codes selected."""
    n = len(conds[0])
    split = [_parts(c, n) for c in [*choices, default]]
    offsets = np.cumsum([0] + [len(v) for _, v in split])
    codes = [c + off for (c, _), off in zip(split, offsets, strict=False)]
    return _indexed(np.select(conds, codes[:-1], codes[-1]), [w for _, v in split for w in v])


@dataclass
class Frame:
    """One kind's rows: Arrow columns by template key, and the file group of each row."""

    cols: dict[str, pa.Array]
    group: np.ndarray

    @classmethod
    def build(cls, columns: Mapping[str, Any], group: Any, n: int) -> Frame:
        groups = np.full(n, group) if isinstance(group, str) else np.asarray(group)
        return cls({k: _col(v, n) for k, v in columns.items()}, groups)

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]], keys: Sequence[str], group: str) -> Frame:
        columns = {k: np.array([str(r.get(k, "")) for r in rows], dtype=object) for k in keys}
        return cls.build(columns, group, len(rows))

    def __len__(self) -> int:
        return len(self.group)

    def __contains__(self, col: str) -> bool:
        return col in self.cols

    def text(self, col: str) -> pa.Array:
        """The column as plain strings (converted once, when first edited)."""
        self.cols[col] = _text(self.cols[col])
        return self.cols[col]

    def strings(self, col: str) -> list[str]:
        return _text(self.cols[col]).to_pylist()

    def get(self, col: str, rows: np.ndarray) -> np.ndarray:
        taken = self.cols[col].take(pa.array(np.asarray(rows, np.int64)))
        return np.array(_text(taken).to_pylist(), dtype=object)

    def set(self, col: str, rows: np.ndarray, values: Any) -> None:
        """Overwrite the cells of col in rows (distinct row numbers) with values."""
        rows = np.asarray(rows, np.int64)
        if not len(rows):
            return
        new = [str(v) for v in np.asarray(values, dtype=object)]
        if pa.types.is_dictionary(self.cols[col].type):  # edit the codes, grow the vocabulary
            codes, vocab = _parts(self.cols[col], len(self))
            index: dict[str, int] = {}
            for i, v in enumerate(vocab):  # a stacked vocabulary may repeat a value
                index.setdefault(v, i)
            for v in new:
                if v not in index:
                    index[v] = len(vocab)
                    vocab.append(v)
            codes[rows] = [index[v] for v in new]
            self.cols[col] = _indexed(codes, vocab)
            return
        order = np.argsort(rows, kind="stable")
        mask = np.zeros(len(self), bool)
        mask[rows] = True
        replacement = pa.array([new[i] for i in order], pa.string())
        self.cols[col] = pc.replace_with_mask(self.text(col), pa.array(mask), replacement)

    def fill(self, col: str, mask: np.ndarray, value: str) -> None:
        rows = np.flatnonzero(mask)
        self.set(col, rows, np.full(len(rows), value, dtype=object))

    def equals(self, col: str, value: str) -> np.ndarray:
        a = self.cols[col]
        if pa.types.is_dictionary(a.type):
            hits = [i for i, v in enumerate(a.dictionary.to_pylist()) if v == value]
            return np.isin(a.indices.to_numpy(zero_copy_only=False), hits)
        return pc.equal(self.text(col), value).to_numpy(zero_copy_only=False)

    def recode(self, col: str, mask: np.ndarray, mapping: Mapping[str, str]) -> None:
        for old, new in mapping.items():
            self.fill(col, mask & self.equals(col, old), new)


# =======================================================================================
# Buildings
# =======================================================================================
def _villages(rng: Rng, town: np.ndarray, urban: np.ndarray) -> np.ndarray:
    """A village (村) for rural rows, a community (社区) for urban ones."""
    out = np.full(len(town), "", dtype="<U12")
    for t, name in enumerate(_town_tables()[1]):
        rural, city = (town == t) & ~urban, (town == t) & urban
        out[rural] = _choice(rng, [v + "村" for v in VILLAGES[name]], int(rural.sum()))
        seat = "园区" if name in TOWN_SHORT else name[:-1]
        out[city] = _choice(rng, [c + "社区" for c in COMMUNITIES.get(name, [seat])], int(city.sum()))
    return out


def _base(n: int, town: np.ndarray, urban: np.ndarray, rng: Rng, **cols: Any) -> dict[str, Any]:
    """The columns every building base has; cols override the defaults."""
    base = {
        "town": town, "urban": urban, "village": _villages(rng, town, urban),
        "clinic": np.zeros(n, bool), "cap": np.full(n, 120), "org": np.full(n, "", "<U1"),
        "label": np.full(n, "", "<U1"),
    }  # fmt: skip
    base.update(cols)
    base["setting"] = cols.get("setting", np.where(urban, "core", "rural"))
    return base


def _zjj_base(rng: Rng, n: int) -> dict[str, Any]:
    """Housing-bureau rows, by town: homes, offices, shops, factories and the rest."""
    names = _town_tables()[1]
    layout = _town_tables()[2]
    town = _town_draw(rng, n)
    urban = rng.random(n) < layout[town, 3]
    core = np.isin(town, [names.index(t) for t in CORE_TOWNS])
    hilly = np.isin(town, [names.index(t) for t in HILLY_TOWNS])
    setting = np.where(urban, np.where(core, "core", "seat"), np.where(hilly, "hilly", "rural"))
    use = _strings(n, list(USE_SIZE))
    for s, mix in (("core", "core"), ("seat", "seat"), ("rural", "rural"), ("hilly", "rural")):
        m = setting == s
        use[m] = _pick(rng, USE_MIX[mix], int(m.sum()))
    cap = np.where((use == "住宅") & ~urban, 3, 120)
    fp = _lookup(use, {u: v["footprint"] for u, v in USE_SIZE.items()}).astype(float)
    return _base(n, town, urban, rng, setting=setting, use=use, cap=cap, fp=fp,
                 group=np.full(n, "ZJJ"))  # fmt: skip


def _edu_base(rng: Rng, n: int) -> dict[str, Any]:
    """Education-bureau rows: school and kindergarten buildings."""
    names = _town_tables()[1]
    kind = _pick(rng, {k: v["weight"] for k, v in SCHOOL_KINDS.items()}, n)
    core_idx = np.array([names.index(t) for t in CORE_TOWNS])
    town = np.where(kind == "urban", core_idx[rng.integers(0, 3, n)], _town_draw(rng, n))
    in_village = _in(kind, ("village_primary", "village_kg"))
    base = _base(n, town, ~in_village, rng)
    short = np.array([TOWN_SHORT.get(x, x) for x in names])[town]
    place = np.where(in_village, np.strings.replace(base["village"], "村", ""), short)
    suffix = np.array([SCHOOL_KINDS[k]["suffix"] for k in kind])
    urban_name = _cat("利通区第", _choice(rng, NUMERALS[:9], n), _choice(rng, ("小学", "中学"), n))
    use = np.array([SCHOOL_KINDS[k]["use"] for k in kind])
    label = np.where(use == "学校", _pick(rng, SCHOOL_LABELS, n), _pick(rng, KG_LABELS, n))
    base.update(
        use=use, group=np.full(n, "JYJ"), org=np.where(kind == "urban", urban_name, _cat(place, suffix)),
        label=label, cap=np.array([SCHOOL_KINDS[k]["cap"] for k in kind], int),
        fp=np.array([SCHOOL_KINDS[k]["footprint"] for k in kind], float),
    )  # fmt: skip
    return base


def _med_base(rng: Rng, n: int) -> dict[str, Any]:
    """Health-commission rows: hospitals, health centres and village clinics."""
    names = _town_tables()[1]
    kind = _pick(rng, {k: v["weight"] for k, v in MED_KINDS.items()}, n)
    core_idx = np.array([names.index(t) for t in CORE_TOWNS])
    town = np.where(kind == "community", core_idx[rng.integers(0, 3, n)], _town_draw(rng, n))
    town = np.where(kind == "district", names.index("胜利镇"), town)
    base = _base(n, town, kind != "village", rng)
    village = base["village"]
    short = np.array([TOWN_SHORT.get(x, x) for x in names])[town]
    org = np.select(
        [kind == "district", kind == "community", kind == "town"],
        [_choice(rng, DISTRICT_HOSPITALS, n),
         _cat(np.strings.replace(village, "社区", ""), "社区卫生服务中心"), _cat(short, "卫生院")],
        _cat(np.strings.replace(village, "村", ""), "村卫生室"),
    )  # fmt: skip
    base.update(
        use=np.full(n, "医院"), clinic=kind == "village", group=np.full(n, "WJJ"), org=org,
        label=np.where(kind == "village", "", _pick(rng, HOSPITAL_LABELS, n)),
        cap=np.array([MED_KINDS[k]["cap"] for k in kind], int),
        fp=np.array([MED_KINDS[k]["footprint"] for k in kind], float),
    )  # fmt: skip
    return base


def _structure_rows(b: Mapping[str, Any], key: str) -> np.ndarray:
    if key.startswith("住宅:"):
        return (b["use"] == "住宅") & (b["setting"] == key[3:])
    if key == "卫生室":
        return b["clinic"]
    return (b["use"] == key) & ~b["clinic"]


def _structure_and_size(rng: Rng, b: Mapping[str, Any]) -> dict[str, np.ndarray]:
    n = len(b["use"])
    st = _strings(n, list(FLOORS))
    for key, mix in STRUCTURE_MIX.items():
        m = _structure_rows(b, key)
        st[m] = _pick(rng, mix, int(m.sum()))
    core = b["setting"] == "core"
    lo, mode, hi = (
        np.where(core, _lookup(st, {k: v[0][i] for k, v in FLOORS.items()}),
                 _lookup(st, {k: v[1][i] for k, v in FLOORS.items()}))
        for i in range(3)
    )  # fmt: skip
    floors = np.maximum(np.minimum(_tri_int(rng, lo, mode, hi), b["cap"]), 1)
    storey = _lookup(b["use"], {u: v["storey"] for u, v in USE_SIZE.items()}).astype(float)
    storey = storey + rng.uniform(-0.1, 0.3, n)
    shed = (floors == 1) & _in(b["use"], ("厂房", "仓库"))
    storey = np.where(shed, rng.uniform(6, 9, n), storey)
    height = floors * storey + rng.uniform(0.3, 1.2, n)  # + parapet or roof
    sigma = _lookup(b["use"], {u: v["sigma"] for u, v in USE_SIZE.items()}).astype(float)
    fp = b["fp"] * np.exp(np.clip(rng.normal(0, 1, n), -2, 2) * sigma)
    fp = np.where((b["use"] == "住宅") & b["urban"], fp * 3.2, fp)  # apartment blocks
    area = np.maximum(fp * floors, 12)
    area = np.where(area < 300, np.round(area), np.round(area, 1))
    deep = _in(st, ("剪力墙", "框架-剪力墙")) & core & (rng.random(n) < 0.7)
    below = np.where(deep, rng.integers(1, 3, n), (core & (st == "框架") & (rng.random(n) < 0.3)))
    return {"structure": st, "floors": floors, "height": np.round(height, 1), "area": area,
            "below": below.astype(np.int64)}  # fmt: skip


def _seismic_design(rng: Rng, b: Mapping[str, Any], st: np.ndarray, year: np.ndarray) -> np.ndarray:
    """是/否/不详: engineered and newer buildings designed, rural self-built mostly not."""
    rural = ~b["urban"]
    key_use = _in(b["use"], ("学校", "幼儿园", "医院", "养老机构"))
    eng, brick = _in(st, ENGINEERED), st == "砖混"
    p_yes = np.select(
        [key_use & (year >= 1990), eng & (year >= 2001), eng & (year >= 1990), eng,
         brick & ~rural & (year >= 2001), brick & ~rural & (year >= 1990),
         brick & rural & (year >= 2009), brick & rural & (year >= 2001), st == "轻钢",
         _in(st, TRADITIONAL)],
        [0.97, 0.95, 0.75, 0.3, 0.9, 0.6, 0.45, 0.2, 0.6, 0.02], 0.08,
    )  # fmt: skip
    r = rng.random(len(st))
    return np.where(r < p_yes, "是", np.where(r < p_yes + (1 - p_yes) * 0.8, "否", "不详"))


def _era_and_design(rng: Rng, b: Mapping[str, Any], s: Mapping[str, Any]) -> dict[str, Any]:
    n, st = len(b["use"]), s["structure"]
    lo, mode, hi = (_lookup(st, {k: v[i] for k, v in YEARS.items()}) for i in range(3))
    year = np.minimum(_tri_int(rng, lo, mode, hi), 2023)
    seismic = _seismic_design(rng, b, st, year)
    designed = _pick(rng, BUILDINGS["design_intensity"], n)
    intensity = np.where(seismic == "是", designed, np.where((seismic == "否") & (rng.random(n) < 0.6), "不设防", ""))
    brick, rural = st == "砖混", ~b["urban"]
    ring_p = np.select(
        [brick & (seismic == "是"), brick & ~rural, brick & (year >= 2009), brick,
         _in(st, ("砖木", "混杂结构"))],
        [0.95, 0.5, 0.55, 0.2, 0.1], 0.02,
    )  # fmt: skip
    ring = np.where(_in(st, MASONRY), _yes(rng.random(n) < ring_p), "")
    slab = np.select(
        [_in(st, ENGINEERED[:4]), brick & (year < 2000), brick,
         _in(st, ("砖木", "土木(生土)", "石木")), st == "混杂结构"],
        ["现浇", np.where(rng.random(n) < 0.7, "预制", "现浇"),
         np.where(rng.random(n) < 0.8, "现浇", "预制"), "木", np.where(rng.random(n) < 0.5, "预制", "木")],
        "其他",
    )  # fmt: skip
    key_use = _in(b["use"], ("学校", "幼儿园", "医院", "养老机构"))
    retro_p = np.where(key_use & (year < 2005), 0.3, np.where(year < 2000, 0.03, 0.005))
    retro = (rng.random(n) < retro_p) & (year <= 2018)
    retro_year = np.minimum(np.maximum(year + 5, 2009) + rng.integers(0, 8, n), 2022)
    return {"year": year, "seismic": seismic, "intensity": intensity, "ring": ring, "slab": slab,
            "retro": retro, "retro_year": _masked(retro_year, ~retro)}  # fmt: skip


def _appraisal(rng: Rng, b: Mapping[str, Any], st: np.ndarray, damage: np.ndarray) -> np.ndarray:
    n = len(st)
    key_use = _in(b["use"], ("学校", "幼儿园", "医院"))
    mix = BUILDINGS["appraisal"]
    grade = np.select(
        [damage, key_use, _in(st, TRADITIONAL)],
        [_pick(rng, mix["damaged"], n), _pick(rng, mix["key_use"], n), _pick(rng, mix["traditional"], n)],
        _pick(rng, mix["other"], n),
    )
    return np.where(rng.random(n) < 0.05, "", grade)


def _self_built(rng: Rng, b: Mapping[str, Any], st: np.ndarray, damage: np.ndarray) -> np.ndarray:
    """自建房安全排查结论 (国办发明电〔2022〕10号) for self-built houses and shops: village houses and
    non-engineered town houses and shops; damaged and traditional houses are found wanting more often."""
    n = len(st)
    self_built = (
        (b["group"] == "ZJJ") & _in(b["use"], ("住宅", "商业", "其他")) & (~b["urban"] | _in(st, MASONRY + TRADITIONAL))
    )
    finding = np.select(
        [damage, _in(st, TRADITIONAL)],
        [_pick(rng, SELF_BUILT_MIX["damaged"], n), _pick(rng, SELF_BUILT_MIX["traditional"], n)],
        _pick(rng, SELF_BUILT_MIX["other"], n),
    )
    return np.where(self_built & (rng.random(n) < 0.95), finding, "")


def _condition(rng: Rng, b: Mapping[str, Any], s: Mapping[str, Any], year: np.ndarray) -> dict:
    n, st, floors = len(b["use"]), s["structure"], s["floors"]
    damage = rng.random(n) < _lookup(st, DAMAGE_RATE, 0.008).astype(float) + (year < 1980) * 0.03
    measured = np.where(damage, rng.random(n) < 0.4, rng.random(n) < 0.1)
    tilt = np.round(np.where(damage, rng.uniform(3, 15, n), rng.uniform(0, 2, n)), 1)
    vert_mix, site_mix = BUILDINGS["vertical_irregularity"], BUILDINGS["site_class"]
    vert = np.where(st == "底部框架-抗震墙", _pick(rng, vert_mix["bottom_frame"], n), _pick(rng, vert_mix["other"], n))
    hilly = b["setting"] == "hilly"
    site = np.where(hilly, _pick(rng, site_mix["hilly"], n), _pick(rng, site_mix["other"], n))
    old_masonry = _in(st, MASONRY) & (year < 2000) & (floors >= 2)
    fall_p = np.where(old_masonry, 0.12, np.where(_in(st, TRADITIONAL), 0.06, 0.03))
    high = (s["height"] > np.where(b["use"] == "住宅", 27, 24)) | (floors >= 10)
    return {
        "damage": _yes(damage), "tilt": _masked(tilt, ~measured),
        "grade": _appraisal(rng, b, st, damage), "vert": np.where(floors == 1, "无", vert),
        "plan": _yes(rng.random(n) < np.where(floors == 1, 0.03, 0.07)), "site": site,
        "fall": _yes(rng.random(n) < fall_p), "fire": np.where(high, _yes(rng.random(n) < 0.85), ""),
        "geo": _yes(rng.random(n) < np.where(hilly, 0.12, 0.01)),
        "altered": _yes(rng.random(n) < np.where(b["use"] == "商业", 0.12, 0.05)),
        "self_built": _self_built(rng, b, st, damage),
    }  # fmt: skip


def _occupants(rng: Rng, b: Mapping[str, Any], area: np.ndarray) -> pa.Array:
    n, use, urban = len(b["use"]), b["use"], b["urban"]
    per = _lookup(use, {u: v["per_occupant"] for u, v in USE_SIZE.items()}).astype(float)
    people = area / np.where(per > 0, per, 1) * rng.uniform(0.6, 1.1, n)
    family = rng.choice(np.arange(1, 8), n, p=[0.12, 0.22, 0.2, 0.2, 0.14, 0.08, 0.04])
    people = np.where((use == "住宅") & ~urban, family, people)
    people = np.where((use == "住宅") & urban, area / 35 * rng.uniform(0.6, 1, n), people)
    return _masked(np.round(people).astype(np.int64), (use != "住宅") & (rng.random(n) < 0.05))


def _labels(rng: Rng, b: Mapping[str, Any]) -> dict[str, pa.Array]:
    """Name, owner and address of every building.

    Names and owners are composed on small vocabularies (`_combo`, `_choose`), addresses with
    Arrow joins: a million rows in about a second."""
    n, use, urban, org, village = len(b["use"]), b["use"], b["urban"], b["org"], b["village"]
    town = _indexed(b["town"], _town_tables()[1])
    root = _vmap(village, lambda v: v.removesuffix("村").removesuffix("社区"))
    committee = _vmap(village, lambda v: v + ("村民委员会" if v.endswith("村") else "居民委员会"))
    person = _combo(_draw(rng, SURNAMES, n), _draw(rng, GIVEN_NAMES, n))
    company = _combo("宁夏", _draw(rng, COMPANY_ROOTS, n), _draw(rng, INDUSTRIES, n), "有限公司")
    estate = _combo(_draw(rng, ESTATES, n), "小区")
    trader = _combo(_draw(rng, COMPANY_ROOTS, n), "商贸有限公司")
    works = _in(use, ("厂房", "仓库"))
    owner = _choose(
        [org != "", (use == "住宅") & urban, use == "住宅", (use == "办公") & urban,
         (use == "商业") & (rng.random(n) < 0.5), use == "商业", works, use == "养老机构", use == "宗教"],
        [org, _combo(estate, "业主委员会"), person, _combo("利通区", _draw(rng, OFFICES, n), "服务中心"),
         person, trader, company, _combo(town, "敬老院"), _combo(root, "清真寺管理委员会")],
        committee,
    )  # fmt: skip
    number = _draw(rng, [str(i) for i in range(1, 30)], n)
    plant = _combo(company, _draw(rng, "1 2 3 4 5".split(), n), "号", np.where(use == "厂房", "厂房", "仓库"))
    facility = _draw(rng, BUILDINGS["facilities"], n)
    name = _choose(
        [org != "", (use == "住宅") & urban, (use == "住宅") & (rng.random(n) < 0.1), use == "住宅",
         works, use == "宗教", use == "商业", use == "养老机构", use == "其他"],
        [_combo(org, b["label"]), _combo(estate, number, "号楼"), _combo(person, "住宅"), "", plant,
         _combo(root, "清真寺"), _combo(owner, "门店"), _combo(owner, "住养楼"), _combo(root, facility)],
        _combo(owner, "办公楼"),
    )  # fmt: skip
    rural = _join(town, village, _draw(rng, NUMERALS, n), "组", rng.integers(1, 160, n), "号")
    city = _join(town, village, _draw(rng, STREETS, n), rng.integers(1, 400, n), "号")
    return {"name": name, "owner": owner, "address": _if(urban, city, rural)}


def _responsible(b: Mapping[str, Any]) -> np.ndarray:
    """Town government for rural houses, ZJJ for urban, JYJ/WJJ for their own, GXJ for works."""
    town_unit = np.array(["T" + c[6:] for c in _town_tables()[0]])[b["town"]]
    use, urban = b["use"], b["urban"]
    return np.select(
        [b["group"] == "JYJ", b["group"] == "WJJ", _in(use, ("厂房", "仓库")),
         (use == "商业") & urban, _in(use, ("住宅", "办公")) & urban],
        ["JYJ", "WJJ", "GXJ", "GXJ", "ZJJ"], town_unit,
    )  # fmt: skip


def _survey(rng: Rng, b: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Survey day and surveyor: each town's team (and each department's) has its window."""
    n = len(b["use"])
    team_of = np.where(b["group"] == "ZJJ", b["town"], np.where(b["group"] == "JYJ", -1, -2))
    days, who = np.zeros(n, np.int64), np.full(n, "", dtype="<U4")
    for team_id in np.unique(team_of):
        m = team_of == team_id
        days[m] = _campaign_days(rng, int(m.sum()), int(rng.integers(0, 100)), int(rng.integers(45, 110)))
        team = _team(rng, 5 if team_id >= 0 else 3)
        who[m] = team[rng.integers(0, len(team), int(m.sum()))]
    return days, who


def _town_sequence(rng: Rng, town: np.ndarray) -> np.ndarray:
    """1, 2, … within each town, in a random order (the 6 digits of the building code)."""
    order = np.lexsort((rng.random(len(town)), town))
    starts = np.r_[0, np.flatnonzero(np.diff(town[order])) + 1]
    ranks = np.arange(len(town)) - np.repeat(starts, np.diff(np.r_[starts, len(town)]))
    seq = np.empty(len(town), np.int64)
    seq[order] = ranks + 1
    return seq


def _buildings_base(rng: Rng, n: int) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """All rows' bases, in file order (file, then village), with their sequence numbers."""
    n_edu, n_med = round(n * EDU_SHARE), round(n * MED_SHARE)
    parts = [_zjj_base(rng, n - n_edu - n_med), _edu_base(rng, n_edu), _med_base(rng, n_med)]
    b = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    seq = _town_sequence(rng, b["town"])
    files = np.array(["ZJJ:" + name for name in _town_tables()[1]])[b["town"]]
    group = np.where(b["group"] == "ZJJ", files, b["group"])
    order = np.lexsort((seq, b["town"], _codes(b["village"])[0], _codes(group)[0]))
    return {k: v[order] for k, v in b.items()}, seq[order], group[order]


def _buildings_frame(rng: Rng, n: int) -> Frame:
    b, seq, group = _buildings_base(rng, n)
    codes, names, layout = _town_tables()
    s = _structure_and_size(rng, b)
    e = _era_and_design(rng, b, s)
    c = _condition(rng, b, s, e["year"])
    sigma = np.where(b["urban"], 0.008, np.where(b["setting"] == "hilly", 0.035, 0.022))
    lon, lat = _scatter(rng, layout[b["town"], :2], sigma)
    days, surveyor = _survey(rng, b)
    lab = _labels(rng, b)
    town_code = _indexed(b["town"], codes)
    columns = {
        "building_id": _join("JZ-", town_code, "-", pc.utf8_lpad(_text(seq), width=6, padding="0")),
        "name": lab["name"], "town_code": town_code, "town_name": _indexed(b["town"], names),
        "village": b["village"], "address": lab["address"], "lon": lon, "lat": lat,
        "urban_rural": np.where(b["urban"], "城镇", "农村"), "use": b["use"],
        "structure_type": s["structure"], "floors_above": s["floors"], "floors_below": s["below"],
        "height_m": _masked(s["height"], rng.random(n) < 0.15), "floor_area_m2": s["area"],
        "year_built": e["year"], "seismic_design": e["seismic"], "design_intensity": e["intensity"],
        "ring_beam_tie_column": e["ring"], "slab_type": e["slab"], "retrofitted": _yes(e["retro"]),
        "retrofit_year": e["retro_year"], "altered": c["altered"], "visible_damage": c["damage"],
        "tilt_permille": c["tilt"], "appraisal_grade": c["grade"], "self_built_finding": c["self_built"],
        "vertical_irregularity": c["vert"],
        "plan_irregularity": c["plan"], "site_class": c["site"], "falling_hazard": c["fall"],
        "fire_facilities_ok": c["fire"], "geo_hazard_nearby": c["geo"],
        "occupants": _occupants(rng, b, s["area"]), "owner": lab["owner"],
        "responsible_unit": _responsible(b), "survey_date": _indexed(days, DATE_VOCAB),
        "surveyor": surveyor,
        "remark": np.where(rng.random(n) < 0.04, _choice(rng, REMARKS, n), ""),
    }  # fmt: skip
    return Frame.build(columns, group, n)


def _building_specs() -> dict[str, FileSpec]:
    specs: dict[str, FileSpec] = {}
    for town in TOWN_LAYOUT:
        gbk, plain = town in GBK_TOWNS, town in PLAIN_UTF8_TOWNS
        specs[f"ZJJ:{town}"] = FileSpec(
            "ZJJ", f"房屋建筑调查_{town}",
            encoding="gbk" if gbk else "utf-8" if plain else "utf-8-sig",
            newline="\n" if plain else "\r\n", header_variant=town in VARIANT_HEADER_TOWNS,
            drop=("town_name",) if town in NO_TOWN_NAME_TOWNS else (),
            styles=tuple(TOWN_STYLES.get(town, ())), remarks=town in REMARK_TOWNS,
        )  # fmt: skip
    specs["JYJ"] = FileSpec("JYJ", "学校校舍调查", xlsx=True, header_variant=True)
    specs["WJJ"] = FileSpec("WJJ", "医疗卫生机构房屋调查", mapping=WJJ_MAPPING, drop=("town_name",),
                            styles=("date_slash", "yn_bool"))  # fmt: skip
    return specs


# =======================================================================================
# Bridges
# =======================================================================================
def _bridge_geometry(rng: Rng, n: int) -> dict[str, np.ndarray]:
    size = _pick(rng, {k: v["weight"] for k, v in BRIDGE_SIZES.items()}, n)
    lo = np.array([BRIDGE_SIZES[s]["spans"][0] for s in size])
    spans = _tri_int(rng, lo, lo, np.array([BRIDGE_SIZES[s]["spans"][1] for s in size]))
    max_span = np.array([rng.choice(BRIDGE_SIZES[s]["span_lengths"]) for s in size], float)
    arch = (rng.random(n) < 0.12) & (size != "large")
    spans = np.where(arch, np.minimum(spans, 3), spans)
    if n >= 50:  # the Yellow River bridge
        size[0], spans[0], max_span[0], arch[0] = "large", 25, 50, False
    total = spans * max_span + 2 * rng.uniform(1.5, 5, n)  # spans plus abutments
    return {"size": size, "spans": spans, "max_span": max_span, "total": np.round(total, 1),
            "arch": arch}  # fmt: skip


def _bridge_condition(rng: Rng, year: np.ndarray) -> np.ndarray:
    """Technical condition class: mostly 1–3, older worse, one or two class 5."""
    n = len(year)
    mix = BRIDGES["condition"]
    cls = np.select(
        [year < 1990, year < 2006],
        [_pick(rng, mix["before_1990"], n), _pick(rng, mix["before_2006"], n)],
        _pick(rng, mix["later"], n),
    )
    n5 = 2 if n >= 100 else 1 if n >= 20 else 0
    oldest = np.argsort(year, kind="stable")[: max(n // 4, n5)]
    cls[rng.choice(oldest, n5, replace=False)] = "5"
    return cls


def _bridge_names(rng: Rng, town: np.ndarray, crossing: np.ndarray, route: np.ndarray,
                  size: np.ndarray) -> np.ndarray:  # fmt: skip
    names = _town_tables()[1]
    n = len(town)
    village = np.array([rng.choice(VILLAGES[names[t]]) for t in town])
    suffix = np.array([BRIDGE_SIZES[s]["suffix"] for s in size])
    return np.select(
        [crossing == "河流", crossing == "沟谷", crossing == "道路", crossing == "铁路"],
        [_cat(village, _choice(rng, WATERWAYS, n), suffix), _cat(village, "沟", suffix),
         _cat(village, route, "跨线桥"), _cat(village, "跨铁路立交桥")],
        _cat(village, suffix),
    )  # fmt: skip


def _bridges_frame(rng: Rng, n: int) -> Frame:
    codes, names, layout = _town_tables()
    town = _town_draw(rng, n)
    g = _bridge_geometry(rng, n)
    rclass = _pick(rng, {k: v["weight"] for k, v in ROUTE_CLASSES.items()}, n)
    crossing = _pick(rng, CROSSINGS, n)
    year = np.minimum(_tri_int(rng, np.full(n, 1965), np.full(n, 2005), np.full(n, 2023)), 2023)
    if n >= 50:  # the Yellow River bridge: national road, 2004, continuous girders
        town[0], rclass[0], crossing[0], year[0] = names.index("金积镇"), "national", "河流", 2004
    route = np.array([rng.choice(ROUTE_CLASSES[c]["routes"]) for c in rclass])
    name = _bridge_names(rng, town, crossing, route, g["size"])
    multi = (g["spans"] > 1) & (g["max_span"] >= 13)
    continuity = np.where(g["arch"], "", np.where(multi & (rng.random(n) < 0.4), "连续", "简支"))
    lifeline = rng.random(n) < np.array([ROUTE_CLASSES[c]["lifeline"] for c in rclass])
    large_type = np.where(np.arange(n) > 0, _pick(rng, BRIDGES["large_type"], n), "梁式桥")
    if n >= 50:
        name[0], continuity[0], lifeline[0] = "利通黄河大桥", "连续", True
    stake_km, stake_m = rng.integers(0, 120, n), rng.integers(0, 1000, n)
    has_stake = np.array([ROUTE_CLASSES[c]["stake"] for c in rclass])
    aadt = [rng.integers(*ROUTE_CLASSES[c]["aadt"]) for c in rclass]
    days = _campaign_days(rng, n, 30, 120)
    back = (rng.uniform(0, 1, n) * (days + 770)).astype(np.int64)
    inspected = SURVEY_FIRST - np.timedelta64(800, "D") + back.astype("timedelta64[D]")
    lon, lat = _scatter(rng, layout[town, :2], 0.025)
    team = _team(rng, 3)
    old = year < 1990
    intensity, seat, liquefiable = (BRIDGES[k] for k in ("design_intensity", "seat_width_ok", "liquefiable_site"))
    columns = {
        "bridge_id": _cat("QL-", np.array(codes)[town], "-", np.strings.zfill((np.arange(n) + 1).astype(str), 3)),
        "name": name, "route": route,
        "stake": np.where(has_stake, _cat("K", stake_km, "+", np.strings.zfill(stake_m.astype(str), 3)), ""),
        "town_code": np.array(codes)[town], "town_name": np.array(names)[town], "lon": lon, "lat": lat,
        "structure_type": np.where(g["arch"], "拱桥", np.where(g["size"] == "large", large_type, "梁式桥")),
        "continuity": continuity, "span_count": g["spans"], "max_span_m": g["max_span"],
        "total_length_m": g["total"],
        "pier_type": np.where(g["spans"] == 1, "无", np.where(
            g["arch"], "实体墩", _pick(rng, BRIDGES["pier_type"], n))),
        "bearing_type": np.where(g["arch"], "无", np.where(
            g["size"] == "large", _pick(rng, BRIDGES["bearing_type"]["large"], n),
            _pick(rng, BRIDGES["bearing_type"]["other"], n))),
        "year_built": year,
        "design_intensity": np.select(
            [year >= 2000, year >= 1990],
            [_pick(rng, intensity["since_2000"], n), _pick(rng, intensity["since_1990"], n)],
            _pick(rng, intensity["older"], n)),
        "anti_fall_measures": _yes(rng.random(n) < np.where(year >= 2008, 0.8, 0.3)),
        "seat_width_ok": np.where(old, _pick(rng, seat["before_1990"], n), _pick(rng, seat["later"], n)),
        "condition_class": _bridge_condition(rng, year),
        "last_inspection": np.where(rng.random(n) < 0.15, "", np.datetime_as_string(inspected, unit="D")),
        "scour": _yes((crossing == "河流") & (rng.random(n) < 0.08)),
        "liquefiable_site": np.where(crossing == "河流", _pick(rng, liquefiable["river"], n),
                                     _pick(rng, liquefiable["other"], n)),
        "skew_deg": np.where(rng.random(n) < 0.75, 0, np.round(rng.uniform(5, 40, n))).astype(int),
        "aadt": np.array(aadt, np.int64), "lifeline_route": _yes(lifeline), "crossing": crossing,
        "owner_unit": np.array([ROUTE_CLASSES[c]["owner"] for c in rclass]), "responsible_unit": "ZJJ",
        "survey_date": DATE_VOCAB[days], "surveyor": team[rng.integers(0, len(team), n)],
    }  # fmt: skip
    return Frame.build(columns, "ZJJ", n)


# =======================================================================================
# Hazardous-chemical sites and their inventory
# =======================================================================================
def _credit_codes(rng: Rng, n: int) -> list[str]:
    """Unified social credit codes of Wuzhong enterprises, with a valid GB 32100 check digit."""
    out: list[str] = []
    while len(out) < n:
        area = "640302" if rng.random() < 0.75 else "640300"
        code = "91" + area + "MA7" + "".join(rng.choice(list(CHARSET), 6))
        code += check_char(code)
        if code not in out:
            out.append(code)
    return out


Stock = list[tuple[str, float, str]]  # (chemical, max quantity t, unit name)


def _stock(rng: Rng, arch: Archetype) -> Stock:
    """2–6 chemicals: the archetype's sure ones plus a random few."""
    chosen = [s for s in arch.stock if s[3] >= 1 or rng.random() < s[3]]
    for s in sorted(arch.stock, key=lambda s: -s[3]):
        if len(chosen) < 2 and s not in chosen:
            chosen.append(s)
    out = []
    for chem, lo, hi, _, unit in chosen[:6]:
        q = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        out.append((chem, round(q, 2 if q < 10 else 1), unit))
    return out


def _alpha(population: int) -> float:
    """GB 18218 α by people within 500 m outside the boundary."""
    for threshold, alpha in ((100, 2.0), (50, 1.5), (30, 1.2), (1, 1.0)):
        if population >= threshold:
            return alpha
    return 0.5


def _unit_scores(stock: Stock, alpha: float) -> dict[str, tuple[float, float]]:
    """unit → (S = Σ q/Q, R = α Σ β q/Q)."""
    scores: dict[str, tuple[float, float]] = {}
    for chem, q, unit in stock:
        c = CHEMICALS[chem]
        s, r = scores.get(unit, (0.0, 0.0))
        scores[unit] = (s + q / c.q, r + alpha * c.beta * q / c.q)
    return scores


def _grade_of(s: float, r: float) -> str:
    return "非重大危险源" if s < 1 else next(g for t, g in GRADES if r >= t)


def _grade(stock: Stock, alpha: float) -> str:
    """The site's grade: its worst major-hazard unit (GB 18218 grades per unit)."""
    majors = [r for s, r in _unit_scores(stock, alpha).values() if s >= 1]
    return _grade_of(1, max(majors)) if majors else "非重大危险源"


def _ambiguous(stock: Stock, alpha: float) -> bool:
    """Near a threshold, or the site total would grade differently from its worst unit."""
    units = _unit_scores(stock, alpha).values()
    near = any(0.8 <= s < 1.25 or (s >= 1 and any(0.8 * t <= r < 1.25 * t for t in (10, 50, 100))) for s, r in units)
    total = _grade_of(sum(s for s, _ in units), sum(r for _, r in units))
    return near or total != _grade(stock, alpha)


def _settle(stock: Stock, alpha: float) -> Stock:
    """Nudge quantities away from thresholds, so the computed grade is unambiguous."""
    for _ in range(12):
        if not _ambiguous(stock, alpha):
            break
        scores = _unit_scores(stock, alpha)
        worst = max(scores, key=lambda u: scores[u][0])
        factor = 1.3 if scores[worst][0] >= 1.1 else 0.65
        stock = [(c, round(q * (factor if u == worst else 0.6), 2), u) for c, q, u in stock]
    return stock


def _phone(rng: Rng) -> str:
    if rng.random() < 0.5:
        return f"0953-{rng.integers(2000000, 8000000)}"
    return f"1{rng.choice(['39', '35', '89', '51', '52'])}{rng.integers(10000000, 99999999)}"


def _site_row(rng: Rng, arch: Archetype, site_id: str, root: str, town: str) -> dict[str, Any]:
    codes, names, _ = _town_tables()
    park = INDUSTRIAL_PARKS[town] if arch.in_park else None
    centre = np.array([park[:2] if park else TOWN_LAYOUT[town][:2]])
    lon, lat = _scatter(rng, centre, 0.006 if park else 0.02)
    population = int(rng.integers(0, 120) if park else rng.integers(80, 2500))
    alpha = _alpha(population)
    stock = _settle(_stock(rng, arch), alpha)
    road = f"{rng.choice(['经', '纬'])}{rng.choice(NUMERALS[:6])}路" if park else str(rng.choice(STREETS))
    place = park[2] if park else f"{rng.choice(VILLAGES[town])}村"
    tanks = not all(u.endswith("库房") for _, _, u in stock)
    flags = {k: "是" if rng.random() < p else "否" for k, p in SITE_FLAGS.items()}
    return {
        "site_id": site_id, "town_code": codes[names.index(town)], "town_name": town,
        "name": str(rng.choice(arch.names)).format(root=root, town=TOWN_SHORT.get(town, town)),
        "lon": _num1(lon[0], 6), "lat": _num1(lat[0], 6),
        "address": f"{town}{place}{road}{rng.integers(1, 300)}号", "site_kind": arch.site_kind,
        "population_500m": str(population),
        "nearest_sensitive_m": str(rng.integers(30, 450) if population >= 100 else rng.integers(300, 3000)),
        "year_built": str(rng.integers(1995, 2023)),
        "building_grade": _one(rng, BUILDING_GRADE),
        **flags, "tanks_anchored": flags["tanks_anchored"] if tanks else "无储罐",
        "declared_grade": _grade(stock, alpha),
        "contact": str(_names(rng, 1)[0]), "phone": _phone(rng),
        "_stock": stock,
    }  # fmt: skip


def _under_declare(rng: Rng, rows: list[dict[str, Any]]) -> int:
    """A few major hazard sources declare a lower grade than the computed one."""
    majors = [i for i, r in enumerate(rows) if r["declared_grade"] != "非重大危险源"]
    for i, r in enumerate(rows):
        if i not in majors and rng.random() < 0.2:
            r["declared_grade"] = ""  # optional: a few small sites leave it blank
    k = max(1, round(len(majors) / 4)) if len(majors) >= 2 else 0
    order = ("非重大危险源", "四级", "三级", "二级", "一级")
    for j, i in enumerate(rng.permutation(majors)[:k]):
        grade = rows[i]["declared_grade"]
        rows[i]["declared_grade"] = "非重大危险源" if j == 0 else order[order.index(grade) - 1]
    return k


def _site_rows(rng: Rng, n: int) -> list[dict[str, Any]]:
    counts = _largest_remainder(n, {k: a.weight for k, a in SITE_ARCHETYPES.items()})
    kinds = rng.permutation([k for k, c in counts.items() for _ in range(c)])
    ids = _credit_codes(rng, n)
    roots = [COMPANY_ROOTS[i % len(COMPANY_ROOTS)] + ("" if i < len(COMPANY_ROOTS) else str(i))
             for i in rng.permutation(max(n, len(COMPANY_ROOTS)))]  # fmt: skip
    names = _town_tables()[1]
    rows = []
    for i, kind in enumerate(kinds):
        arch = SITE_ARCHETYPES[kind]
        town = (rng.choice(list(INDUSTRIAL_PARKS)) if arch.in_park
                else rng.choice(CORE_TOWNS) if kind == "gas" else rng.choice(names))  # fmt: skip
        rows.append(_site_row(rng, arch, ids[i], roots[i], str(town)))
    return rows


def _sites_frame(rng: Rng, n: int) -> tuple[Frame, list[Stock], dict[str, int]]:
    rows = _site_rows(rng, n)
    majors = sum(r["declared_grade"] != "非重大危险源" for r in rows)
    planted = {"major_hazard_sites": majors, "under_declared_sites": _under_declare(rng, rows)}
    team = _team(rng, 2)
    for r, day in zip(rows, _campaign_days(rng, n, 40, 90), strict=True):
        r.update(survey_date=DATE_VOCAB[day], surveyor=str(rng.choice(team)))
    frame = Frame.from_rows(rows, load_template("hazchem_sites").keys, "YJJ")
    return frame, [r["_stock"] for r in rows], planted


def _inventory_frame(rng: Rng, site_ids: Sequence[str], stocks: Sequence[Stock]) -> Frame:
    rows = []
    for site_id, stock in zip(site_ids, stocks, strict=True):
        for chem, q, unit in stock:
            c = CHEMICALS[chem]
            blank_cat = chem in NAMED_TOXIC and rng.random() < 0.5
            rows.append({
                "site_id": site_id, "unit_name": unit,
                "unit_kind": "储存单元" if unit.endswith(STORAGE_UNIT_SUFFIXES) else "生产单元",
                "chemical": chem, "cas": "/" if c.mixture and rng.random() < 0.4 else c.cas,
                "category": "" if blank_cat else c.category, "max_quantity_t": _num1(q),
                "critical_quantity_t": _num1(c.q) if blank_cat or rng.random() < 0.5 else "",
            })  # fmt: skip
    return Frame.from_rows(rows, load_template("hazchem_inventory").keys, "YJJ")


# =======================================================================================
# Pipelines
# =======================================================================================
def _along(path: tuple[tuple[float, float], ...], f: float) -> tuple[float, float]:
    """The point at fraction f of a polyline's length."""
    pts = np.array(path)
    seg = np.hypot(*(np.diff(pts, axis=0) * [88.0, 111.0]).T)  # km at 38° N
    d = f * seg.sum()
    i = min(int(np.searchsorted(np.cumsum(seg), d)), len(seg) - 1)
    t = (d - np.r_[0, np.cumsum(seg)][i]) / seg[i]
    p = pts[i] + t * (pts[i + 1] - pts[i])
    return float(p[0]), float(p[1])


def _towns_along(line: PipelineLine, f0: float, f1: float) -> str:
    codes, names, layout = _town_tables()
    seen: list[int] = []
    for f in np.linspace(f0, f1, 5):
        lon, lat = _along(line.path, float(f))
        t = int(np.argmin(np.hypot((layout[:, 0] - lon) * 88, (layout[:, 1] - lat) * 111)))
        seen += [] if t in seen else [t]
    return "、".join(names[t] for t in seen) if line.town_names else ";".join(codes[t] for t in seen)


def _hca(rng: Rng, medium: str, loc: str) -> str:
    """High-consequence area: for gas lines by location class (GB 32167), oil at random."""
    if medium == "天然气":
        return {"4": "III", "3": "II", "2": str(rng.choice(["I", "无"]))}.get(loc, "无")
    return _one(rng, OIL_HCA)


def _segment(rng: Rng, line: PipelineLine, j: int, k: int) -> dict[str, str]:
    f0, f1 = j / k, (j + 1) / k
    (x0, y0), (x1, y1) = _along(line.path, f0), _along(line.path, f1)
    km = np.hypot((x1 - x0) * 88, (y1 - y0) * 111) * rng.uniform(1.03, 1.12)
    loc = _one(rng, LOCATION_CLASS)
    ili = f"{rng.integers(2018, 2023)}-{rng.integers(3, 11):02d}-{rng.integers(1, 28):02d}"
    return {
        "segment_id": f"{line.prefix}-{j + 1:03d}", "pipeline_name": line.name,
        "operator": line.operator, "operator_code": line.operator_code, "medium": line.medium, "material": line.material,
        "steel_grade": line.steel_grade, "joint_type": "焊接", "diameter_mm": _num1(line.diameter_mm),
        "wall_mm": _num1(line.wall_mm), "design_pressure_mpa": _num1(line.pressure_mpa),
        "year_built": str(line.year), "length_km": _num1(km), "start_lon": f"{x0:.5f}",
        "start_lat": f"{y0:.5f}", "end_lon": f"{x1:.5f}", "end_lat": f"{y1:.5f}",
        "town_codes": _towns_along(line, f0, f1), "location_class": loc,
        "hca_grade": _hca(rng, line.medium, loc), "fault_crossing": "否", "fault_offset_m": "",
        "fault_seismic_design": "",
        "ground_failure": "是" if rng.random() < 0.35 else "否",
        "max_metal_loss_pct": _num1(rng.uniform(2, 32), 1), "last_ili": ili,
        "cathodic_ok": "是" if rng.random() < 0.85 else "否",
        "leak_detection": "是" if rng.random() < 0.75 else "否",
    }  # fmt: skip


def _plant_pipeline_hazards(rng: Rng, rows: list[dict[str, str]]) -> dict[str, int]:
    """Up to three fault crossings (the first a gas line in an HCA III; designed or verified to GB/T 50470-2017,
    not, and unknown), corrosion, stale inspections."""
    n = len(rows)
    gas = [i for i, r in enumerate(rows) if r["medium"] == "天然气"]
    oil = [i for i, r in enumerate(rows) if r["medium"] != "天然气"]
    branch = [i for i in gas if rows[i]["pipeline_name"] != rows[gas[len(gas) // 2]]["pipeline_name"]]
    faults = ([gas[len(gas) // 2]] if gas else []) + ([oil[len(oil) // 2]] if oil and n >= 6 else [])
    faults += [branch[len(branch) // 2]] if branch and n >= 9 else []
    for i, (offset, designed) in zip(faults, FAULT_CROSSINGS, strict=False):
        rows[i].update(fault_crossing="是", fault_offset_m=offset, fault_seismic_design=designed)
    if faults and gas:
        rows[faults[0]].update(hca_grade="III", location_class="4")
    crude = [i for i, r in enumerate(rows) if r["medium"] == "原油"] or list(range(n))
    corroded = crude[: 2 if n >= 10 else 1] if n >= 3 else []
    for i in corroded:
        rows[i]["max_metal_loss_pct"] = _num1(rng.uniform(41, 56), 1)
    stale = [i for i in range(n) if i not in corroded and i not in faults][-3:] if n >= 5 else []
    for i, when in zip(stale, ("2012-06-18", "2014-09-03", ""), strict=False):
        rows[i].update(last_ili=when, max_metal_loss_pct=rows[i]["max_metal_loss_pct"] if when else "")
    designed = [rows[i]["fault_seismic_design"] for i in faults]
    return {"fault_crossings": len(faults), "fault_crossings_not_verified": designed.count("否"),
            "fault_crossings_design_unknown": designed.count("不详"), "metal_loss_ge_40": len(corroded),
            "stale_or_no_ili": len(stale)}  # fmt: skip


def _pipelines_frame(rng: Rng, n: int) -> tuple[Frame, dict[str, int]]:
    weights = {line.name: 1.5 if i == 0 else 1.0 for i, line in enumerate(PIPELINE_LINES)}
    counts = _largest_remainder(n, weights)
    rows = [_segment(rng, line, j, counts[line.name]) for line in PIPELINE_LINES
            for j in range(counts[line.name])]  # fmt: skip
    planted = _plant_pipeline_hazards(rng, rows)
    team = _team(rng, 2)
    for r, day in zip(rows, _campaign_days(rng, n, 60, 60), strict=True):
        r.update(survey_date=DATE_VOCAB[day], surveyor=str(rng.choice(team)))
    return Frame.from_rows(rows, load_template("pipelines").keys, "FGJ"), planted


# =======================================================================================
# Value spellings: what clerks type and Excel saves
# =======================================================================================
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
THOUSANDS_COLUMNS = ("floor_area_m2", "total_length_m", "max_quantity_t")
FULLWIDTH_COLUMNS = ("floors_above", "floor_area_m2", "year_built", "occupants", "span_count")
YOUWU_COLUMNS = ("visible_damage", "ring_beam_tie_column", "falling_hazard", "geo_hazard_nearby",
                 "anti_fall_measures", "scour")  # fmt: skip
STYLE_ORDER = ("thousands", "fullwidth", "year_suffix", "year_month", "yn_bool", "youwu_bool",
               "date_slash", "date_cn", "slash_unknown", "buxiang_unknown", "short_enum")  # fmt: skip


def _keys(tpl: Template, frame: Frame, pred: Callable[[Any], bool]) -> list[str]:
    return [f.key for f in tpl.fields if pred(f) and f.key in frame]


def _rewrite(frame: Frame, cols: Sequence[str], mask: np.ndarray, fn: Callable[[pd.Series], Any]) -> None:
    """Rewrite the non-blank cells of cols in the masked rows with fn (on a Series)."""
    rows = np.flatnonzero(mask)
    for col in (c for c in cols if c in frame):
        vals = frame.get(col, rows)
        keep = vals != ""
        if keep.any():
            new = fn(pd.Series(vals[keep], dtype=object))
            frame.set(col, rows[keep], np.asarray(new, dtype=object))


def _thousands(s: pd.Series) -> pd.Series:
    x = pd.to_numeric(s, errors="coerce")
    big = (x >= 1000).to_numpy()
    out = s.copy()
    out[big] = [f"{v:,.1f}".removesuffix(".0") for v in x[big]]
    return out


def _date_format(year_sep: str, month_sep: str, end: str) -> Callable[[pd.Series], pd.Series]:
    """ISO dates rewritten as `2023/5/12` or `2023年5月12日` (invalid ones left alone)."""

    def apply(s: pd.Series) -> pd.Series:
        d = pd.to_datetime(s, format="%Y-%m-%d", errors="coerce")
        ok = d.notna().to_numpy()
        y, m, day = (p[ok].astype(int).astype(str) for p in (d.dt.year, d.dt.month, d.dt.day))
        out = s.copy()
        out[ok] = (y + year_sep + m + month_sep + day + end).to_numpy()
        return out

    return apply


def _style(frame: Frame, style: str, mask: np.ndarray, tpl: Template, rng: Rng) -> None:
    """Apply one spelling habit to the masked rows."""
    n = len(frame)
    bools = _keys(tpl, frame, lambda f: f.type == "bool" or f.key == "seismic_design")
    years = _keys(tpl, frame, lambda f: f.type == "year")
    dates = _keys(tpl, frame, lambda f: f.type == "date")
    if style == "thousands":
        _rewrite(frame, THOUSANDS_COLUMNS, mask, _thousands)
    elif style == "fullwidth":
        _rewrite(frame, FULLWIDTH_COLUMNS, mask & (rng.random(n) < 0.06), lambda s: s.str.translate(FULLWIDTH))
    elif style == "year_suffix":
        _rewrite(frame, years, mask & (rng.random(n) < 0.5), lambda s: s + "年")
    elif style == "year_month":

        def add_month(s: pd.Series) -> pd.Series:
            return s + [f"-{m:02d}" for m in rng.integers(1, 13, len(s))]

        _rewrite(frame, years[:1], mask & (rng.random(n) < 0.3), add_month)
    elif style in ("yn_bool", "youwu_bool"):
        yn = style == "yn_bool"
        for col in bools if yn else [c for c in YOUWU_COLUMNS if c in frame]:
            mapping = {"是": "Y", "否": "N"} if yn else {"是": "有", "否": "无"}
            frame.recode(col, mask & (rng.random(n) < 0.8), mapping)
    elif style in ("date_slash", "date_cn"):
        seps = ("/", "/", "") if style == "date_slash" else ("年", "月", "日")
        _rewrite(frame, dates, mask, _date_format(*seps))
    elif style in ("slash_unknown", "buxiang_unknown"):
        marker = "/" if style == "slash_unknown" else "不详"
        for col in _keys(tpl, frame, lambda f: not f.required and f.type not in ("text", "town_code")):
            frame.fill(col, mask & (rng.random(n) < 0.35) & frame.equals(col, ""), marker)
    elif style == "short_enum":
        frame.recode("structure_type", mask & (rng.random(n) < 0.7), {"土木(生土)": "土木"})
        frame.recode("site_class", mask & (rng.random(n) < 0.5), {"II": "Ⅱ", "III": "Ⅲ"})


def _apply_styles(frame: Frame, kind: str, specs: Mapping[str, FileSpec], rng: Rng) -> None:
    tpl = load_template(kind)
    for style in STYLE_ORDER:
        groups = [g for g, spec in specs.items() if style in spec.styles]
        mask = _in(frame.group, groups)
        if mask.any():
            _style(frame, style, mask, tpl, rng)


# =======================================================================================
# Defects
# =======================================================================================
def _largest_remainder(total: int, weights: Mapping[str, float],
                       floor: Mapping[str, int] | None = None) -> dict[str, int]:  # fmt: skip
    """Split total in proportion to weights (at least floor[k] each)."""
    floor = floor or {}
    w = np.fromiter(weights.values(), float)
    quota = total * w / w.sum()
    counts = {k: max(int(q), floor.get(k, 0)) for k, q in zip(weights, quota, strict=True)}
    rest = total - sum(counts.values())
    for i in np.argsort(-(quota - np.floor(quota)), kind="stable")[: max(rest, 0)]:
        counts[list(weights)[i]] += 1
    return counts


def _allocate(kind: str, n_rows: int, rate: float) -> dict[str, int]:
    """How many rows of each defect: rate of the rows, one of each must-have if there is room."""
    weights, musts = DEFECT_WEIGHTS[kind], DEFECT_MUSTS[kind]
    if n_rows == 0 or rate <= 0:
        return dict.fromkeys(weights, 0)
    floor = dict.fromkeys(musts, 1) if n_rows >= 10 * len(musts) else {}
    return _largest_remainder(max(round(rate * n_rows), len(floor)), weights, floor)


@dataclass
class Injector:
    """Overwrites chosen rows of one kind's frame with defects, and counts them."""

    kind: str
    frame: Frame
    rng: Rng
    town_name_rows: np.ndarray  # rows whose file has a 乡镇 column
    free: np.ndarray = field(init=False)  # rows not yet touched (nor used as a source)

    def __post_init__(self) -> None:
        self.free = np.ones(len(self.frame), bool)

    def run(self, plan: Mapping[str, int]) -> dict[str, int]:
        constrained = ("duplicate_id", "exact_duplicate", "town_mismatch")  # first, while rows are free
        counts = {}
        for name in sorted(plan, key=lambda d: d not in constrained):
            if plan[name]:
                counts[name] = getattr(self, name)(plan[name])
        return counts

    def take(self, k: int, eligible: np.ndarray | None = None) -> np.ndarray:
        pool = np.flatnonzero(self.free if eligible is None else self.free & eligible)
        rows = np.sort(self.rng.choice(pool, size=min(k, len(pool)), replace=False))
        self.free[rows] = False
        return rows

    def put(self, rows: np.ndarray, col: str, values: Sequence[str]) -> int:
        self.frame.set(col, rows, _choice(self.rng, values, len(rows)))
        return len(rows)

    def _paired(self, k: int) -> np.ndarray:
        """Rows whose previous row (same file) stays untouched, to copy from."""
        g = self.frame.group
        ok = np.r_[False, g[1:] == g[:-1]] & np.r_[False, self.free[:-1]]
        rows = self.take(k, ok)
        chained = np.isin(rows - 1, rows)
        self.free[rows[chained]] = True
        rows = rows[~chained]
        self.free[rows - 1] = False
        return rows

    def _from_table(self, k: int, table: Mapping[str, Sequence[str]]) -> int:
        rows = self.take(k)
        cols = _choice(self.rng, list(table), len(rows))
        return sum(self.put(rows[cols == col], col, values) for col, values in table.items())

    def missing_required(self, k: int) -> int:
        return self._from_table(k, dict.fromkeys(MISSING_COLUMNS[self.kind], MISSING_MARKERS))

    def non_numeric(self, k: int) -> int:
        return self._from_table(k, NON_NUMERIC[self.kind])

    def out_of_range(self, k: int) -> int:
        return self._from_table(k, OUT_OF_RANGE[self.kind])

    def not_allowed(self, k: int) -> int:
        return self._from_table(k, NOT_ALLOWED[self.kind])

    def coord_outside(self, k: int) -> int:
        rows = self.take(k)
        pick = self.rng.integers(0, len(OUTSIDE_COORDS), len(rows))
        lon, lat = ("start_lon", "start_lat") if self.kind == "pipelines" else ("lon", "lat")
        self.frame.set(lon, rows, [OUTSIDE_COORDS[i][0] for i in pick])
        self.frame.set(lat, rows, [OUTSIDE_COORDS[i][1] for i in pick])
        return len(rows)

    def town_unknown(self, k: int) -> int:
        return self.put(self.take(k), "town_code", UNKNOWN_TOWN_CODES)

    def town_mismatch(self, k: int) -> int:
        rows = self.take(k, self.town_name_rows)
        names = list(towns().values())
        current = [names.index(t) for t in self.frame.get("town_name", rows)]
        shift = self.rng.integers(1, len(names), len(rows))
        self.frame.set("town_name", rows, [names[(c + s) % len(names)] for c, s in zip(current, shift, strict=True)])
        return len(rows)

    def unit_unknown(self, k: int) -> int:
        return self.put(self.take(k), "responsible_unit", UNKNOWN_UNITS)

    def bad_date(self, k: int) -> int:
        return self.put(self.take(k), "survey_date", BAD_DATES)

    def year_after_survey(self, k: int) -> int:
        return self.put(self.take(k), "year_built", AFTER_SURVEY_YEARS)

    def duplicate_id(self, k: int) -> int:
        rows = self._paired(k)
        id_col = load_template(self.kind).id_keys[0]
        self.frame.set(id_col, rows, self.frame.get(id_col, rows - 1))
        return len(rows)

    def exact_duplicate(self, k: int) -> int:
        rows = self._paired(k)
        for col in list(self.frame.cols):
            self.frame.set(col, rows, self.frame.get(col, rows - 1))
        return len(rows)

    def span_gt_length(self, k: int) -> int:
        rows = self.take(k)
        span = pd.to_numeric(pd.Series(self.frame.get("max_span_m", rows)), errors="coerce").fillna(20)
        self.frame.set("total_length_m", rows, _num(span * self.rng.uniform(0.4, 0.8, len(rows))))
        return len(rows)

    def bad_check_digit(self, k: int) -> int:
        rows = self.take(k)
        codes = self.frame.get("site_id", rows)
        wrong = [c[:17] + str(self.rng.choice([x for x in CHARSET if x != c[17]])) for c in codes]
        self.frame.set("site_id", rows, wrong)
        return len(rows)

    def unknown_site(self, k: int) -> int:
        rows = self.take(k)
        known = set(self.frame.strings("site_id"))
        fresh = [c for c in _credit_codes(self.rng, len(rows) + len(known)) if c not in known]
        self.frame.set("site_id", rows, fresh[: len(rows)])
        return len(rows)

    def unknown_town_in_list(self, k: int) -> int:
        rows = self.take(k)
        cells = self.frame.get("town_codes", rows)
        self.frame.set("town_codes", rows, [c + ("、秦渠镇" if "、" in c else ";640302999") for c in cells])
        return len(rows)


# =======================================================================================
# Writing
# =======================================================================================
_NUMERIC = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NEEDS_QUOTES = r'[",\r\n]'


def _excel_cell(v: str) -> Any:
    """What a typed-in Excel cell holds: numbers and dates as such, the rest as text."""
    if v == "":
        return None
    if _NUMERIC.match(v):
        return float(v) if "." in v else int(v)
    if _ISO_DATE.match(v):
        try:
            return date.fromisoformat(v)
        except ValueError:
            return v
    return v


def _quote(cell: str) -> str:
    needs = "," in cell or '"' in cell or "\n" in cell or "\r" in cell
    return '"' + cell.replace('"', '""') + '"' if needs else cell


def _cells(col: pa.Array) -> pa.Array:
    """A column's CSV cells, quoted only where needed (QUOTE_MINIMAL, like Excel and pandas)."""
    if pa.types.is_dictionary(col.type):
        codes, vocab = _parts(col, len(col))
        return _text(_indexed(codes, [_quote(v) for v in vocab]))
    if not pa.types.is_string(col.type):
        return _text(col)  # numbers: nothing to quote
    return _quoted(_text(col))


def _quoted(col: pa.Array) -> pa.Array:
    needs = pc.match_substring_regex(col, _NEEDS_QUOTES)
    if not pc.any(needs).as_py():
        return col
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(col, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, col)


def _csv_bytes(cols: Sequence[pa.Array], headers: Sequence[str], encoding: str, newline: str) -> bytes:
    """A CSV file's bytes, built with Arrow (a million rows in about a second)."""
    head = ",".join(map(_quote, headers)) + newline
    lines = pc.binary_join_element_wise(*[_cells(c) for c in cols], ",")
    lines = pc.binary_join_element_wise(lines, "", newline)  # each line + newline
    whole = pa.ListArray.from_arrays(pa.array([0, len(lines)], pa.int32()), lines)
    body = pc.binary_join(whole, "")[0]
    if encoding.startswith("utf-8"):
        bom = b"\xef\xbb\xbf" if encoding == "utf-8-sig" else b""
        return bom + head.encode() + body.as_buffer().to_pybytes()
    return (head + body.as_py()).encode(encoding)  # GBK: raises if a value cannot be encoded


def _write_xlsx(cols: Sequence[pa.Array], headers: Sequence[str], path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "调查表"
    ws.append(list(headers))
    for row in zip(*[_text(c).to_pylist() for c in cols], strict=True):
        ws.append([_excel_cell(v) for v in row])
    wb.save(path)


def _headers(tpl: Template, cols: Sequence[str], spec: FileSpec, mixed: bool) -> list[str]:
    headers = [tpl.field(k).header if tpl.has(k) else "备注" for k in cols]
    if not mixed:
        return headers
    if spec.header_variant:
        headers = [_variant_header(h, i) for i, h in enumerate(headers)]
    own = {template: mine for mine, template in spec.mapping}
    return [own.get(h, h) for h in headers]


def _variant_header(header: str, i: int) -> str:
    """Full-width brackets and units, and the odd stray space, as typed in Excel."""
    h = HEADER_VARIANTS.get(header, header.replace("(", "（").replace(")", "）"))
    h = " " + h if i % 5 == 1 else h
    h = h + " " if i % 7 == 3 else h
    return h + "\u3000" if i == 9 else h


def _write_kind(out: Path, kind: str, frame: Frame, specs: Mapping[str, FileSpec], mixed: bool) -> list[Path]:
    tpl = load_template(kind)
    written = []
    for group, spec in specs.items():
        rows = np.flatnonzero(frame.group == group)
        if not len(rows):
            continue
        keys = [k for k in tpl.keys if k not in spec.drop] + (["remark"] if spec.remarks else [])
        index = pa.array(rows)
        cols = [frame.cols[k].take(index) for k in keys]
        headers = _headers(tpl, keys, spec, mixed)
        path = out / kind / spec.unit / ROUND / f"{spec.name}{'.xlsx' if mixed and spec.xlsx else '.csv'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if mixed and spec.xlsx:
            _write_xlsx(cols, headers, path)
        else:
            encoding, newline = (spec.encoding, spec.newline) if mixed else ("utf-8", "\n")
            path.write_bytes(_csv_bytes(cols, headers, encoding, newline))
        written.append(path)
        if mixed and spec.mapping:
            mapping = out / kind / spec.unit / "列映射.csv"
            pairs = [pa.array(list(side)) for side in zip(*spec.mapping, strict=True)]
            mapping.write_bytes(_csv_bytes(pairs, ["本单位列名", "模板列名"], "utf-8-sig", "\r\n"))
            written.append(mapping)
    return written


# =======================================================================================
# Orchestration
# =======================================================================================
@dataclass
class KindResult:
    frame: Frame
    specs: dict[str, FileSpec]
    defects: dict[str, int]
    planted: dict[str, int] = field(default_factory=dict)


def _finish(
    kind: str, frame: Frame, specs: dict[str, FileSpec], rng: Rng, rate: float, broken: np.ndarray | None = None
) -> KindResult:
    """Apply each file's value spellings, then inject the defects (sparing rows already broken)."""
    _apply_styles(frame, kind, specs, rng)
    with_name = [g for g, spec in specs.items() if "town_name" not in spec.drop]
    has_town = np.isin(frame.group, with_name) & ("town_name" in frame)
    injector = Injector(kind, frame, rng, has_town)
    if broken is not None:
        injector.free &= ~broken
    return KindResult(frame, specs, injector.run(_allocate(kind, len(frame), rate)))


def _one_file(unit: str, name: str, **kw: Any) -> dict[str, FileSpec]:
    return {unit: FileSpec(unit, name, **kw)}


def _hazchem(rng: Rng, n: int, rate: float) -> dict[str, KindResult]:
    frame, stocks, planted = _sites_frame(rng, n)
    sites = _finish("hazchem_sites", frame, _one_file("YJJ", "危险化学品单位基本情况"), rng, rate)
    sites.planted = planted
    # the department copies its own (possibly mistyped) codes into the inventory
    written = frame.strings("site_id")
    inventory = _inventory_frame(rng, written, stocks)
    typo = np.isin(np.array(inventory.strings("site_id"), dtype=object), [c for c in written if not is_valid(c)])
    inv = _finish("hazchem_inventory", inventory, _one_file("YJJ", "危险化学品储存明细"), rng, rate, typo)
    if typo.any():
        inv.defects["bad_check_digit"] = int(typo.sum())
    return {"hazchem_sites": sites, "hazchem_inventory": inv}


def generate(
    out_dir: Path,
    buildings: int = 20000,
    bridges: int = 150,
    sites: int = 40,
    pipelines: int = 15,
    seed: int = 2023,
    defect_rate: float = 0.03,
    formats: str = "mixed",
    more_kinds: bool = True,
) -> dict[str, Any]:
    """Write a sample survey under out_dir; return the files, rows and defects injected."""
    if formats not in ("mixed", "csv"):
        raise ValueError(f"formats must be 'mixed' or 'csv', not {formats!r}")
    out, mixed = Path(out_dir), formats == "mixed"
    rng = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    results: dict[str, KindResult] = {}
    if buildings > 0:
        frame = _buildings_frame(rng[0], buildings)
        results["buildings"] = _finish("buildings", frame, _building_specs(), rng[0], defect_rate)
    if bridges > 0:
        specs = _one_file("ZJJ", "桥梁调查", header_variant=True, styles=("date_slash",))
        results["bridges"] = _finish("bridges", _bridges_frame(rng[1], bridges), specs, rng[1], defect_rate)
    if sites > 0:
        results.update(_hazchem(rng[2], sites, defect_rate))
    if pipelines > 0:
        frame, planted = _pipelines_frame(rng[3], pipelines)
        specs = _one_file("FGJ", "油气长输管道调查", encoding="utf-8", newline="\n", styles=("slash_unknown",))
        crossings = frame.equals("fault_crossing", "是")  # no defect on a planted fault crossing: it reaches scoring
        results["pipelines"] = _finish("pipelines", frame, specs, rng[3], defect_rate, crossings)
        results["pipelines"].planted = planted
    files = [p for kind, r in results.items() for p in _write_kind(out, kind, r.frame, r.specs, mixed)]
    if "bridges" in results and mixed:
        files.append(_bridge_resurvey(out, results["bridges"].frame, np.random.default_rng(seed + 2024)))
    more_rows: dict[str, int] = {}
    if more_kinds:  # geological hazard points, shelters, reservoirs and dykes, water supply (issue 29 §5)
        more_files, more_rows = more_kinds_sample.generate(out, seed)
        files += more_files
    summary = _summary(out, files, results, formats, seed, defect_rate)
    summary["rows"].update(more_rows)
    return summary


RESURVEY_ROUND = "2024-2"  # reference/survey_rounds.csv: 2024年地震风险隐患排查（复查）
RESURVEY_SHARE = 1 / 3
NEW_SCOUR = 0.15  # of the resurveyed bridges, scour found since 2023 (a new R03 hazard in 2024)


def _bridge_resurvey(out: Path, frame: Frame, rng: Rng) -> Path:
    """The transport bureau's 2024 resurvey of a third of the bridges (clean template headers, UTF-8 with BOM):
    dated 2024-08/09, the same records with new scour found on some. Re-surveyed bridges keep or open their
    hazards under the same numbers; the 2024 findings run on 2024 deadlines."""
    tpl = load_template("bridges")
    rows = np.flatnonzero(rng.random(len(frame)) < RESURVEY_SHARE)
    index = pa.array(rows)
    cols = {k: frame.cols[k].take(index) for k in tpl.keys}
    days = rng.integers(0, 45, len(rows))
    cols["survey_date"] = pa.array([str(np.datetime64("2024-08-12") + int(d)) for d in days])
    scour = np.array(cols["scour"].to_pylist(), dtype=object)
    cols["scour"] = pa.array(np.where(rng.random(len(rows)) < NEW_SCOUR, "是", scour).tolist())
    path = out / "bridges" / "ZJJ" / RESURVEY_ROUND / "桥梁复查.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    headers = [tpl.field(k).header for k in tpl.keys]
    path.write_bytes(_csv_bytes([cols[k] for k in tpl.keys], headers, "utf-8-sig", "\r\n"))
    return path


def _summary(out: Path, files: list[Path], results: Mapping[str, KindResult], formats: str,
             seed: int, rate: float) -> dict[str, Any]:  # fmt: skip
    totals = {d: sum(r.defects.get(d, 0) for r in results.values()) for d in DEFECT_KINDS}
    return {
        "out_dir": str(out), "round": ROUND, "formats": formats, "seed": seed, "defect_rate": rate,
        "files": sorted(p.relative_to(out).as_posix() for p in files),
        "bytes": sum(p.stat().st_size for p in files),
        "rows": {k: len(r.frame) for k, r in results.items()},
        "defects": totals, "defective_rows": sum(totals.values()),
        "defects_by_kind": {k: {d: c for d, c in r.defects.items() if c} for k, r in results.items()},
        "planted": {k: r.planted for k, r in results.items() if r.planted},
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Generate a seeded sample survey of 利通区.")
    ap.add_argument("--out", type=Path, default=Path("data_raw"))
    ap.add_argument("--buildings", type=int, default=20000)
    ap.add_argument("--bridges", type=int, default=150)
    ap.add_argument("--sites", type=int, default=40)
    ap.add_argument("--pipelines", type=int, default=15)
    ap.add_argument("--seed", type=int, default=2023)
    ap.add_argument("--defect-rate", type=float, default=0.03)
    ap.add_argument("--formats", choices=("mixed", "csv"), default="mixed")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    summary = generate(a.out, a.buildings, a.bridges, a.sites, a.pipelines, a.seed, a.defect_rate, a.formats)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(summary, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
