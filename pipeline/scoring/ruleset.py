"""Load the rule set from `rules/` and refuse it whole if anything in it is broken.

A broken rule set raises `RuleSetError` whose message names every broken file and rule;
no scoring runs on a half-loaded set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import duckdb
import yaml

from pipeline.engines.base import RuleSetError  # noqa: F401 - defined with the seam (an engine refuses a rule set too)
from pipeline.engines.seam import current
from pipeline.engines.settings import engine
from pipeline.formats.yaml_file import load_yaml
from pipeline.platform import stage_inputs
from pipeline.platform.paths import RULES_DIR, SCHEMAS_DIR
from pipeline.platform.store import ensure_schema, quote, staging_table

RECTIFICATION = {"immediate": "立即整改", "project": "项目整改", "control": "管控措施"}
HAZARD_GRADES = {"重大", "一般"}
CONFIDENCE = {"V", "S", "J", "U"}
REQUIRED_KEYS = {
    "id": str, "title_zh": str, "title_en": str, "when": str, "points": (int, float),
    "source": dict, "examples": dict,
}  # fmt: skip
HAZARD_KEYS = {"hazard_grade": str, "rectification": str, "deadline_days": int, "measure_zh": str}


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str
    file: str
    title_zh: str
    title_en: str
    when: str
    points: float
    hard: bool
    hazard: bool
    hazard_grade: str | None
    rectification: str | None
    deadline_days: int | None  # days to eliminate it, or (control) to put the control measures in place
    measure_zh: str | None
    responsible: str
    source_ref: str
    confidence: str
    source_doc: str
    evidence: tuple[str, ...]
    fires: tuple[dict, ...]
    silent: tuple[dict, ...]
    review_days: int | None = None  # under control (管控中): the review cycle; a missed review is overdue
    grade_basis: str | None = None  # why 一般/重大 for an enterprise's hazard (the production-safety definition)
    source_zh: str = ""  # the citation as a clerk reads it in the ledger (《标准名》（代号）第…条)
    # an immediate measure (停止使用, 封闭, 疏散, 限载, 关闭交通 …): days to put the control in place, beside the
    # longer deadline; a control not in place by then is overdue on its own (管控逾期)
    control_days: int | None = None


@dataclass(frozen=True)
class KindSpec:
    kind: str
    view: str
    id: str
    name: str
    town: str
    lon: str
    lat: str
    owner_code: str | None = None  # an enterprise owns the asset: its credit code is the responsible party
    owner_name: str | None = None
    sector: str | None = None  # the asset's sector, the key of reference/supervision.csv (its supervisor)
    title: str = ""  # the kind as people read it (资产类别 in the ledger, charts, briefing)
    prefix: str = ""  # the ledger's numbering prefix (隐患编号 JZ-…)
    harm: str = ""  # what an earthquake may do with a hazard of the kind (the ledger's 隐患描述)
    staging: tuple[str, ...] = ()  # the staging tables the view reads (default: stg_<kind>)
    examples: str = "survey"  # "view": the rules' examples are rows of the view itself (a view that aggregates)
    # what the asset register carries of the kind beyond its place and hazards (pipeline/publish/asset_register.py
    # REGISTER_COLUMNS): column → SQL expression over the view, e.g. the dam's safety class as its `label`
    register: tuple[tuple[str, str], ...] = ()

    @property
    def deps(self) -> list[str]:
        return list(self.staging) or [f"stg_{self.kind}"]


@dataclass
class RuleSet:
    rules: list[Rule]
    kinds: dict[str, KindSpec]
    version: str
    rules_dir: Path
    problems: list[str] = field(default_factory=list)

    def for_kind(self, kind: str) -> list[Rule]:
        return [r for r in self.rules if r.kind == kind]

    # What an engine needs of the rule set in a DuckDB of its own (its reference tables and views, the rules'
    # examples): methods, so an engine that checks the rules elsewhere (Spark) imports nothing of the scoring.
    def install(self, con: duckdb.DuckDBPyConnection) -> None:
        install(con, self.rules_dir)

    def load_example(self, con: duckdb.DuckDBPyConnection, spec: KindSpec, example: dict) -> None:
        load_example(con, spec, example)

    def example_source(self, con: duckdb.DuckDBPyConnection, spec: KindSpec) -> str:
        return example_source(con, spec)

    def clear_examples(self, con: duckdb.DuckDBPyConnection, spec: KindSpec) -> None:
        clear_examples(con, spec)


def ruleset_version(rules_dir: Path) -> str:
    """Hash of every file of the rule set (rules, views, reference tables)."""
    h = hashlib.sha256()
    for p in sorted(q for q in rules_dir.rglob("*") if q.is_file() and q.suffix in {".yaml", ".sql", ".csv"}):
        h.update(p.relative_to(rules_dir).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _parse_rule(raw: dict, kind: str, file: str, problems: list[str]) -> Rule | None:
    rid = raw.get("id", "?") if isinstance(raw, dict) else "?"
    where = f"{file}: rule {rid}"
    if not isinstance(raw, dict):
        problems.append(f"{where}: not a mapping")
        return None
    bad = [k for k, t in REQUIRED_KEYS.items() if not isinstance(raw.get(k), t)]
    hazard = bool(raw.get("hazard", False))
    if hazard:
        bad += [k for k, t in HAZARD_KEYS.items() if not isinstance(raw.get(k), t)]
    if bad:
        problems.append(f"{where}: missing or wrong type: {', '.join(bad)}")
        return None
    unknown = set(raw) - {
        *REQUIRED_KEYS,
        *HAZARD_KEYS,
        "hard",
        "hazard",
        "responsible",
        "evidence",
        "review_days",
        "grade_basis",
        "control_days",
    }
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)}")
    src = raw["source"]
    if not src.get("ref") or src.get("confidence") not in CONFIDENCE:
        problems.append(f"{where}: source needs ref and confidence (one of V, S, J, U)")
    if hazard and not str(src.get("zh") or "").strip():
        problems.append(f"{where}: a hazard rule's source needs zh (the Chinese citation the ledger shows)")
    if hazard and raw["hazard_grade"] not in HAZARD_GRADES:
        problems.append(f"{where}: hazard_grade must be 重大 or 一般")
    if hazard and raw["rectification"] not in RECTIFICATION:
        problems.append(f"{where}: rectification must be one of {sorted(RECTIFICATION)}")
    if hazard and raw["rectification"] == "control" and not isinstance(raw.get("review_days"), int):
        problems.append(f"{where}: a control-only hazard needs review_days (its review cycle under control)")
    problems += control_days_problems(raw, where, hazard)
    ex = raw["examples"]
    if not ex.get("fires") or "silent" not in ex:
        problems.append(f"{where}: examples need at least one 'fires' and a 'silent' list")
    return Rule(
        id=str(raw["id"]), kind=kind, file=file, title_zh=raw["title_zh"], title_en=raw["title_en"],
        when=raw["when"], points=float(raw["points"]), hard=bool(raw.get("hard", False)), hazard=hazard,
        hazard_grade=raw.get("hazard_grade"), rectification=raw.get("rectification"),
        deadline_days=raw.get("deadline_days"), measure_zh=raw.get("measure_zh"),
        responsible=str(raw.get("responsible", "asset")), source_ref=str(src.get("ref", "")),
        confidence=str(src.get("confidence", "")), source_doc=str(src.get("doc", "")),
        evidence=tuple(raw.get("evidence", [])), fires=tuple(ex.get("fires") or ()),
        silent=tuple(ex.get("silent") or ()), review_days=raw.get("review_days"),
        grade_basis=raw.get("grade_basis"), source_zh=str(src.get("zh") or ""),
        control_days=raw.get("control_days"),
    )  # fmt: skip


def control_days_problems(raw: dict, where: str, hazard: bool = True) -> list[str]:
    """`control_days` (optional): a whole number of days > 0, on a hazard rule only, shorter than its
    deadline_days (the control comes before the rectification). Also used for rules/quake/damage.yaml."""
    if "control_days" not in raw:
        return []
    days, deadline = raw["control_days"], raw.get("deadline_days")
    if not hazard:
        return [f"{where}: control_days is only for a hazard rule (hazard: true)"]
    if not isinstance(days, int) or isinstance(days, bool) or days <= 0:
        return [f"{where}: control_days must be a whole number of days > 0, not {days!r}"]
    if isinstance(deadline, int) and days >= deadline:
        return [f"{where}: control_days ({days}) must be smaller than deadline_days ({deadline})"]
    return []


def load_kinds(rules_dir: Path = RULES_DIR) -> dict[str, KindSpec]:
    """rules/kinds.yaml: how each kind is scored (cheap: no rule is parsed or verified)."""
    raw = load_yaml((rules_dir / "kinds.yaml").read_text(encoding="utf-8"))
    specs = {}
    for k, v in raw.items():
        owner = v.pop("owner", None) or {}
        staging = tuple(v.pop("staging", None) or ())
        register = tuple((str(c), str(e)) for c, e in (v.pop("register", None) or {}).items())
        specs[k] = KindSpec(
            kind=k, **v, staging=staging, register=register, owner_code=owner.get("code"), owner_name=owner.get("name")
        )
    return specs


def parse_rules(rules_dir: Path = RULES_DIR) -> RuleSet:
    """Read every rule file; structural problems are collected in `problems`."""
    kinds = load_kinds(rules_dir)
    problems: list[str] = []
    rules: list[Rule] = []
    for path in sorted(rules_dir.glob("*.yaml")):
        if path.name == "kinds.yaml":
            continue
        file = path.relative_to(rules_dir.parent).as_posix()
        try:
            doc = load_yaml(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            problems.append(f"{file}: not valid YAML: {e}")
            continue
        if not isinstance(doc, dict) or doc.get("kind") not in kinds or not isinstance(doc.get("rules"), list):
            problems.append(f"{file}: needs 'kind' (one of {sorted(kinds)}) and a 'rules' list")
            continue
        rules += [r for raw in doc["rules"] if (r := _parse_rule(raw, doc["kind"], file, problems))]
    seen: dict[str, str] = {}
    for r in rules:
        if r.id in seen:
            problems.append(f"{r.file}: rule {r.id}: id already used in {seen[r.id]}")
        seen.setdefault(r.id, r.file)
    units_codes = _unit_codes()
    for r in rules:
        if r.responsible != "asset" and r.responsible not in units_codes:
            problems.append(f"{r.file}: rule {r.id}: responsible {r.responsible!r} is not 'asset' or a unit code")
        if r.hazard and kinds[r.kind].owner_code and not (r.grade_basis or "").strip():
            problems.append(
                f"{r.file}: rule {r.id}: an enterprise's hazard needs grade_basis (why 一般 or 重大: "
                "一般 the enterprise can rectify at once; 重大 needs a plan, a stoppage or outside help)"
            )
    return RuleSet(rules, kinds, ruleset_version(rules_dir), rules_dir, problems)


def _unit_codes() -> set[str]:
    from pipeline.registries.templates import units

    return set(units())


def install(con: duckdb.DuckDBPyConnection, rules_dir: Path = RULES_DIR) -> None:
    """Reference tables (`ref_<name>`) and the views the rules read."""
    for csv_path in sorted((rules_dir / "reference").glob("*.csv")):
        con.execute(
            f"CREATE OR REPLACE TABLE ref_{csv_path.stem} AS SELECT * FROM read_csv(?, header=true)",
            [str(csv_path)],
        )
    pending = sorted((rules_dir / "views").glob("*.sql"))
    while pending:  # a view may read another view (v_shelter_capacity reads v_shelters): retry until none is left
        failed: list[tuple[Path, duckdb.Error]] = []
        for sql_path in pending:
            try:
                con.execute(sql_path.read_text(encoding="utf-8"))
            except duckdb.CatalogException as e:
                failed.append((sql_path, e))
        if len(failed) == len(pending):
            raise failed[0][1]
        pending = [p for p, _ in failed]


def verify(ruleset: RuleSet) -> None:
    """Compile every condition and run every example in a scratch database; raise on any problem."""
    problems = list(ruleset.problems)
    con = duckdb.connect()
    try:
        ensure_schema(con)
        try:
            install(con, ruleset.rules_dir)
        except duckdb.Error as e:
            raise RuleSetError(f"rules/views or rules/reference do not load: {e}") from e
        for kind, spec in ruleset.kinds.items():
            problems += _verify_kind(con, spec, ruleset.for_kind(kind))
    finally:
        con.close()
    if problems:
        raise RuleSetError("rule set refused:\n  " + "\n  ".join(problems))


def _verify_kind(con: duckdb.DuckDBPyConnection, spec: KindSpec, rules: list[Rule]) -> list[str]:
    """Verify a kind's rules with all their examples loaded at once (one query per rule).

    Each example gets its own asset id. A rule whose examples name the id themselves, or
    whose batch result is wrong, is checked one example at a time for a precise message."""
    compile_problems = {r.id: _compile_problem(con, spec, r) for r in rules}
    problems = [p for p in compile_problems.values() if p]
    compiled = [r for r in rules if not compile_problems[r.id]]
    batched = [r for r in compiled if not any(spec.id in ex for ex in (*r.fires, *r.silent))]
    one_by_one = [r for r in compiled if r not in batched]
    try:
        expected: dict[str, dict[str, bool]] = {}
        for r in batched:
            cases = [(e, True) for e in r.fires] + [(e, False) for e in r.silent]
            expected[r.id] = {f"EX-{r.id}-{n}": fires for n, (_, fires) in enumerate(cases)}
            for n, (example, _) in enumerate(cases):
                load_example(con, spec, {**example, spec.id: f"EX-{r.id}-{n}"})
        for r in batched:
            ids = list(expected[r.id])
            rows = con.execute(
                f"SELECT {quote(spec.id)} FROM {example_source(con, spec)} "
                f"WHERE list_contains(?::VARCHAR[], {quote(spec.id)}) AND coalesce(({r.when}), false)",
                [ids],
            ).fetchall()
            fired = {row[0] for row in rows}
            if any((i in fired) != want for i, want in expected[r.id].items()):
                one_by_one.append(r)
    except duckdb.Error:
        one_by_one = compiled  # an example that does not load: find it one at a time
    finally:
        clear_examples(con, spec)
    for r in one_by_one:
        problems += _verify_rule(con, spec, r)
    return problems


def _compile_problem(con: duckdb.DuckDBPyConnection, spec: KindSpec, r: Rule) -> str | None:
    try:
        cols = ", ".join(quote(c) for c in r.evidence) or "1"
        con.execute(f"SELECT {cols} FROM {example_source(con, spec)} WHERE ({r.when}) LIMIT 0").fetchall()
    except duckdb.Error as e:
        return f"{r.file}: rule {r.id}: condition or evidence does not compile: {str(e).splitlines()[0]}"
    return None


def _verify_rule(con: duckdb.DuckDBPyConnection, spec: KindSpec, r: Rule) -> list[str]:
    """Each example of one rule, one at a time: the precise message for each that misbehaves."""
    where = f"{r.file}: rule {r.id}"
    if problem := _compile_problem(con, spec, r):
        return [problem]
    out = []
    for expected, examples in ((True, r.fires), (False, r.silent)):
        for i, example in enumerate(examples, start=1):
            try:
                fired = fires_on(con, spec, r, example)
            except duckdb.Error as e:
                out.append(f"{where}: example {i} does not load: {str(e).splitlines()[0]}")
                continue
            if fired != expected:
                verb = "should fire but does not" if expected else "should stay silent but fires"
                out.append(f"{where}: example {example} {verb}")
    return out


def fires_on(con: duckdb.DuckDBPyConnection, spec: KindSpec, r: Rule, example: dict) -> bool:
    """Does rule `r` fire on one example record? (the record goes through the real view)."""
    try:
        load_example(con, spec, {spec.id: "EXAMPLE-1", **example})
        n = con.execute(
            f"SELECT count(*) FROM {example_source(con, spec)} WHERE coalesce(({r.when}), false)"
        ).fetchall()[0][0]
    finally:
        clear_examples(con, spec)
    return n > 0


def load_example(con: duckdb.DuckDBPyConnection, spec: KindSpec, example: dict) -> None:
    """An example record into the staging table (with its inventory rows, for hazchem sites)."""
    record = {k: v for k, v in example.items() if not k.startswith("_")}
    record.setdefault("survey_round", "2023-1")
    record.setdefault("survey_date", "2023-06-01")
    if spec.examples == "view":
        table = example_source(con, spec)
        types = dict(con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? AND database_name = 'temp'", [table]
        ).fetchall())  # fmt: skip
        if unknown := [c for c in record if c not in types]:
            raise duckdb.BinderException(f"{spec.view} has no column {unknown[0]!r}")
        cols = list(record)
        con.execute(
            f"INSERT INTO {table} BY NAME SELECT {', '.join(f'?::{types[c]} AS {quote(c)}' for c in cols)}",
            [record[c] for c in cols],
        )
        return
    _insert(con, staging_table(spec.kind), record)
    for inv in example.get("_inventory", []):
        _insert(
            con, "stg_hazchem_inventory", {"site_id": record[spec.id], "survey_round": record["survey_round"], **inv}
        )


def example_source(con: duckdb.DuckDBPyConnection, spec: KindSpec) -> str:
    """What a kind's examples are checked on: its view, fed by the staging table; for a kind whose view aggregates
    (`examples: view` in rules/kinds.yaml) a temporary table shaped like the view, holding the examples as rows."""
    if spec.examples != "view":
        return spec.view
    table = f"__examples_{spec.kind}"
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} AS SELECT * FROM {spec.view} LIMIT 0")
    return table


def clear_examples(con: duckdb.DuckDBPyConnection, spec: KindSpec) -> None:
    if spec.examples == "view":
        con.execute(f"DELETE FROM {example_source(con, spec)}")
        return
    con.execute(f"DELETE FROM {staging_table(spec.kind)}")
    con.execute("DELETE FROM stg_hazchem_inventory")


def _insert(con: duckdb.DuckDBPyConnection, table: str, record: dict) -> None:
    cols = list(record)
    con.execute(
        f"INSERT INTO {table} BY NAME SELECT {', '.join('?::' + _col_type(con, table, c) + ' AS ' + quote(c) for c in cols)}",
        [record[c] for c in cols],
    )


def _col_type(con: duckdb.DuckDBPyConnection, table: str, col: str) -> str:
    types = _table_types(table)
    if col not in types:
        raise duckdb.BinderException(f"{table} has no column {col!r}")
    return types[col]


@cache
def _table_types(table: str) -> dict[str, str]:
    """Column types of a staging table (the same in every database: built from the templates)."""
    con = duckdb.connect()
    ensure_schema(con)
    rows = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?", [table])
    return dict(rows.fetchall())


_VERIFIED: set[tuple[str, str]] = set()


def load_ruleset(rules_dir: Path = RULES_DIR, con: duckdb.DuckDBPyConnection | None = None) -> RuleSet:
    """Parse and verify; the only way the scoring stage gets rules.

    A version already verified in this process (same hash of every rule file) is not re-run, nor one the store
    `con` records as verified with the same rule files, engine, scoring code and DuckDB (issue 30: verifying
    every example took seconds of every scoring and ledger step that had work). What the engine
    (pipeline/engines/seam.py) cannot run is a problem too, named with its rule: on Spark, a condition or view
    that does not translate to Spark SQL (whether Spark accepts it is checked on Spark)."""
    ruleset = parse_rules(rules_dir)
    key = (ruleset.version, engine())  # by content: the same rule set from another checkout is verified once
    if ruleset.problems or (key not in _VERIFIED and not _verified_in(con, key)):
        on = current()
        ruleset.problems += [p for kind in ruleset.kinds for p in on.rule_problems(ruleset, kind)]
        verify(ruleset)
        _VERIFIED.add(key)
        if con is not None:
            stage_inputs.record(con, VERIFIED_STEP, _verification(key))
    return ruleset


VERIFIED_STEP = "ruleset_verified"  # stage_inputs: the last rule set this store saw verified


def _verification(key: tuple[str, str]) -> str:
    """What a verification's verdict depends on: the rule files' contents (their version, not their folder: a
    store scored from another checkout of the same rules is not verified again), the engine, the templates the
    examples are staged as, the code that verifies and runs them, and DuckDB's SQL."""
    templates = stage_inputs.files_version(*sorted(SCHEMAS_DIR.glob("*.yaml")))
    return stage_inputs.fingerprint(key, templates, stage_inputs.code_version("pipeline/scoring", "pipeline/engines"),
                                    duckdb.__version__)  # fmt: skip


def _verified_in(con: duckdb.DuckDBPyConnection | None, key: tuple[str, str]) -> bool:
    return con is not None and stage_inputs.recorded(con, VERIFIED_STEP) == _verification(key)
