"""The documents against the product (issue 31 §3): every command, path, setting, table and column the README and
the guides in docs/ name exists, every link resolves, and what the product has (store tables and columns, the
Parquet export's columns, LITONG_* settings, rule fields) is documented. The store is the bundled sample's, built
once per session by conftest's `sample` fixture, which other test files share."""

from __future__ import annotations

import argparse
import glob
import importlib.util
import re
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pytest
import yaml

from pipeline.platform.paths import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"
DICTIONARY = DOCS / "data-dictionary.md"
GUIDES = {"填报指南.md", "领导阅读说明.md", "值班员指南.md", "operations.md", "data-dictionary.md", "scale-and-spark.md",
          "rules.md"}  # fmt: skip
REPO_TOP = ("schemas/", "rules/", "reference/", "pipeline/", "sample/", "tests/", "benchmarks/", "docs/", ".ci/")
REPO_FILES = ("Makefile", "pyproject.toml", "dagster.yaml", "uv.lock")


# Every document the tests read; a document added to docs/ must be added here (test below), so none goes unchecked.
DOCUMENTS = (
    "README.md",
    *GUIDES,
    "intake.md",
    "ledger.md",
    "portal.md",
    "quake.md",
    "charts-and-briefing.md",
    "layout.md",
)


def documents() -> list[Path]:
    return [README, *(DOCS / d for d in sorted(DOCUMENTS))]


def test_every_document_in_docs_is_checked():
    assert {p.name for p in DOCS.glob("*.md")} == set(DOCUMENTS), "add the new document to DOCUMENTS"


def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def code_of(text: str) -> list[str]:
    """What a document shows as code: fenced blocks (line by line, continuations joined) and inline spans."""
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M)
    lines = [line for b in blocks for line in b.replace("\\\n", " ").splitlines()]
    indented = [m.strip() for m in re.findall(r"^ {4,}(\S.*)$", text, flags=re.M)]  # indented code in a list item
    prose = re.sub(r"^```[a-z]*\n.*?^```", "", text, flags=re.S | re.M)
    return lines + indented + re.findall(r"`([^`\n]+)`", prose)


def all_code() -> list[tuple[str, str]]:
    return [(p.name, c) for p in documents() for c in code_of(text_of(p))]


# --- the documents exist and are short where they must be ------------------------------------------------------


def test_readme_is_at_most_150_lines_and_links_every_guide():
    lines = text_of(README).splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines"
    linked = {unquote(t).removeprefix("docs/") for t in re.findall(r"\]\(([^)#]+)\)", text_of(README))}
    assert GUIDES <= linked, f"README does not link {sorted(GUIDES - linked)}"
    for guide in GUIDES:
        assert (DOCS / guide).is_file(), guide


def test_every_link_and_image_resolves():
    broken = []
    for doc in documents():
        for target in re.findall(r"\]\(([^)\s]+)\)", text_of(doc)):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (doc.parent / unquote(target.split("#", 1)[0])).resolve()
            if not path.exists():
                broken.append(f"{doc.name}: {target}")
    assert not broken, broken


def test_the_guides_screenshots_are_the_script_s_and_small():
    """Every screenshot a guide shows is one docs/portal_screenshots.py takes, and none is large."""
    script = text_of(DOCS / "portal_screenshots.py")
    shown = {
        Path(t).stem for doc in documents() for t in re.findall(r"\]\((?:docs/)?screenshots/([^)]+)\)", text_of(doc))
    }
    taken = set(re.findall(r'save\(\w+, "([^"]+)"', script))
    assert shown and shown <= taken, sorted(shown - taken)
    for png in (DOCS / "screenshots").glob("*.png"):
        assert png.stat().st_size < 400_000, png.name


# --- commands ---------------------------------------------------------------------------------------------------


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", text_of(PROJECT_ROOT / "Makefile"), flags=re.M))


def test_make_targets_named_exist_and_the_two_commands_are_the_makefile_s():
    targets = makefile_targets()
    assert "screenshots" in targets  # the guides' screenshots are made again by one command
    named = {(doc, t) for doc, c in all_code() for t in re.findall(r"(?:^|[;&|(]\s*)make ([a-z][\w-]*)", c)}
    assert named, "no make target named"
    assert not {(d, t) for d, t in named if t not in targets}
    # The run command installs everything and runs the main job; .ci/run calls the test command.
    make = text_of(PROJECT_ROOT / "Makefile")
    assert re.search(r"^run: setup\b", make, flags=re.M) and "-m pipeline.cli run" in make
    assert "make test" in text_of(PROJECT_ROOT / ".ci" / "run")
    assert {"make run", "make test"} <= {c.split("#")[0].strip() for _, c in all_code()}


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def portal_parser() -> argparse.ArgumentParser:
    """The portal's parser, as its main() builds it (stopped before it parses anything)."""
    from pipeline.portal import __main__ as portal_main

    class Built(Exception):
        pass

    def stop(self, *args, **kwargs):
        raise Built(self)

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = stop
    try:
        portal_main.main([])
    except Built as built:
        return built.args[0]
    finally:
        argparse.ArgumentParser.parse_args = original
    raise AssertionError("the portal's main() parsed no arguments")


def named_invocations(module: str) -> list[tuple[str, str, list[str]]]:
    """(document, subcommand, options) for each `-m <module> <sub> …` and, for the CLI, each `cli <sub> …`."""
    found = []
    short = r"|(?:^|\s)cli" if module == "pipeline.cli" else ""
    for doc, code in all_code():
        for m in re.finditer(rf"(?:-m {re.escape(module)}{short}) ([a-z][\w-]*)((?:\s+[^|;#]*)?)", code):
            found.append((doc, m.group(1), re.findall(r"(?<!\S)(--[a-z][\w-]*)", m.group(2))))
    return found


@pytest.mark.parametrize("module", ["pipeline.cli", "pipeline.portal"])
def test_cli_subcommands_and_options_named_exist(module):
    if module == "pipeline.cli":
        from pipeline.cli import build_parser

        parser = build_parser()
    else:
        parser = portal_parser()
    subs = subcommands(parser)
    named = named_invocations(module)
    assert named, f"no {module} command named"
    wrong = [(doc, sub, opts) for doc, sub, opts in named
             if sub not in subs or not set(opts) <= options(subs[sub])]  # fmt: skip
    assert not wrong, wrong


def test_python_modules_named_are_importable():
    modules = {m for _, c in all_code() for m in re.findall(r"python3? -m ([A-Za-z_][\w.]*)", c)}
    assert {"pipeline.cli", "pipeline.portal"} <= modules
    missing = sorted(m for m in modules if importlib.util.find_spec(m) is None)
    assert not missing, missing


def test_dagster_jobs_sensors_and_schedules_named_exist():
    from pipeline.wiring.definitions import defs

    jobs = {j.name for j in defs.resolve_all_job_defs()}
    sensors = {s.name for s in defs.sensors or []}
    schedules = {s.name for s in defs.schedules or []}
    named = {c for _, c in all_code() if re.fullmatch(r"[a-z][a-z_]*_(?:job|sensor)|daily_refresh", c)}
    assert named, "no job, sensor or schedule named"
    assert named <= jobs | sensors | schedules, sorted(named - jobs - sensors - schedules)


def test_portal_pages_named_are_routes():
    routes = re.findall(r'@app\.(?:get|post)\("([^"]+)"', text_of(PROJECT_ROOT / "pipeline" / "portal" / "app.py"))
    patterns = [re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(r)) + "$") for r in routes]
    named = {c.split("?")[0] for _, c in all_code() if re.fullmatch(r"/[a-z][\w/<>.…-]*(\?\S*)?", c)}
    assert named, "no portal page named"
    unknown = sorted(n for n in named if not any(p.match(re.sub(r"<[^>]+>", "x", n)) for p in patterns))
    assert not unknown, unknown


# --- paths ------------------------------------------------------------------------------------------------------


def named_paths() -> set[tuple[str, str]]:
    """Repository and deployment paths named as code: the path's first word, placeholders as written."""
    found = set()
    for doc, code in all_code():
        code = re.sub(r"<[^<>]*>", lambda m: m.group(0).replace(" ", "_"), code)  # `<unit code>`: one placeholder
        for word in re.findall(r"[^\s`'\"(),;]+", code):
            word = word.rstrip(".:")
            if word.startswith((*REPO_TOP, "output/", "data_raw/")) or word in REPO_FILES:
                found.add((doc, word))
    return found


def as_glob(path: str) -> str:
    return re.sub(r"<[^>]*>|…|\{[^}]*\}", "*", path)


def written_by_code(path: str) -> bool:
    """A deployment path no sample run makes (an earthquake's files, the portal's): each literal part of it is
    named in the code that writes it."""
    source = "\n".join(text_of(p) for p in (PROJECT_ROOT / "pipeline").rglob("*.py"))
    parts = [p for seg in as_glob(path).split("/")[1:] for p in re.split(r"\*|_?\d{4}-\d\d-\d\d", seg) if len(p) > 1]
    return all(p in source for p in parts)


def a_survey_folder(path: str) -> bool:
    """An example upload path (`data_raw/buildings/T100/2023-1/…`): a kind the unit may upload, in a survey round."""
    m = re.match(r"data_raw/([a-z_]+)/([0-9A-Z]+)/([0-9]{4}-[0-9])/", path)
    if not m or not (PROJECT_ROOT / "schemas" / f"{m.group(1)}.yaml").is_file():
        return False
    departments = yaml.safe_load(text_of(PROJECT_ROOT / "schemas" / f"{m.group(1)}.yaml")).get("departments") or []
    rounds = {line.split(",")[0] for line in text_of(PROJECT_ROOT / "reference" / "survey_rounds.csv").splitlines()}
    return m.group(2) in departments and m.group(3) in rounds


def test_repository_paths_named_exist():
    missing = sorted((doc, p) for doc, p in named_paths()
                     if not p.startswith(("output/", "data_raw/")) and not glob.glob(as_glob(p), root_dir=PROJECT_ROOT))  # fmt: skip
    assert not missing, missing


def test_output_and_upload_paths_named_are_the_ones_the_product_writes(sample, monkeypatch):
    """`output/…` is the deployment's output folder (pipeline/platform/paths.py): what the sample run wrote there, or, for
    what only an earthquake or the portal writes, names the code writes; `data_raw/…` is the bundled sample's."""
    from pipeline.platform import paths

    deployment, result = sample
    assert result.success
    for name in ("LITONG_OUTPUT", "LITONG_DB"):  # the defaults, as the documents describe them
        monkeypatch.delenv(name, raising=False)
    assert paths.database_path().relative_to(paths.output_dir()).as_posix() == "litong.duckdb"
    assert paths.published_database_path().relative_to(paths.output_dir()).as_posix() == "published/litong.duckdb"
    roots = {"output/": deployment.output, "data_raw/": deployment.data_raw}
    wrong = []
    for doc, p in sorted(named_paths()):
        top = next((t for t in roots if p.startswith(t)), None)
        if top is None:
            continue
        if p.startswith("output/litong.duckdb"):  # the store (the sample's is deployment.db) and files named after it
            store_file = p.removeprefix("output/litong.duckdb")
            if store_file and not written_by_code("output/" + store_file.lstrip(".")):
                wrong.append((doc, p))
            continue
        if (
            not glob.glob(as_glob(p.removeprefix(top)) or ".", root_dir=roots[top])
            and not written_by_code(p)
            and not a_survey_folder(p)
        ):
            wrong.append((doc, p))
    assert not wrong, wrong
    # The README's table of outputs: each row the sample run makes is there.
    table = re.findall(r"^\| `(output/[^`]+)` \|", text_of(README), flags=re.M)
    made = [p for p in table if p.split("/")[1] not in ("quake", "portal", "litong.duckdb")]
    assert len(made) >= 7 and all(
        glob.glob(as_glob(p.removeprefix("output/")), root_dir=deployment.output) for p in made
    )


# --- settings ---------------------------------------------------------------------------------------------------


def litong_settings(text: str) -> set[str]:
    return set(re.findall(r"LITONG_[A-Z][A-Z0-9_]*[A-Z0-9]", text))


def test_every_litong_setting_is_documented_and_every_one_documented_is_read():
    code = set().union(*(litong_settings(text_of(p)) for p in (PROJECT_ROOT / "pipeline").rglob("*.py")))
    documented = set().union(*(litong_settings(text_of(d)) for d in documents()))
    assert code, "no setting found in the code"
    assert not code - documented, f"read by the code, not documented: {sorted(code - documented)}"
    assert not documented - code, f"documented, not read by the code: {sorted(documented - code)}"
    table = litong_settings(text_of(DOCS / "operations.md").split("## Settings", 1)[1].split("\n## ", 1)[0])
    assert code <= table, f"missing from the settings table of operations.md: {sorted(code - table)}"


# --- the data dictionary ----------------------------------------------------------------------------------------


def dictionary() -> dict[str, dict[str, str]]:
    """Each `### \\`table\\`` section's rows: column → type (the Parquet section under the key 'parquet')."""
    text = text_of(DICTIONARY)
    tables: dict[str, dict[str, str]] = {}
    for part in re.split(r"^#{2,3} ", text, flags=re.M)[1:]:
        head, _, body = part.partition("\n")
        name = re.search(r"`([^`]+)`", head)
        if not name:
            continue
        key = "parquet" if name.group(1).endswith(".parquet") else name.group(1)
        rows = re.findall(r"^\| `?([^`|]+?)`? \| ([A-Za-z\[\]]+) \|", body, flags=re.M)
        tables[key] = {c: t for c, t in rows if c != "column"}
    return tables


def quake_tables() -> dict[str, dict[str, str]]:
    """The tables documented in the section on the earthquake store (checked by tests/test_quake_reports.py)."""
    section = text_of(DICTIONARY).split("\n## The earthquake store", 1)[1].split("\n## ", 1)[0]
    return {t: cols for t, cols in dictionary().items() if f"### `{t}`" in section}


def store_tables(*databases: Path) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for db in databases:
        with duckdb.connect(str(db), read_only=True) as con:
            for t, c, ty in con.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                                        "JOIN information_schema.tables USING (table_schema, table_name) "
                                        "WHERE table_type = 'BASE TABLE' ORDER BY table_name, ordinal_position").fetchall():  # fmt: skip
                found.setdefault(t, {})[c] = ty
    return found


def store_views(db: Path) -> set[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_type = 'VIEW'"
            ).fetchall()
        }


def family_columns(family: str, name: str, documented: dict[str, str]) -> set[str] | None:
    """The columns a family table may have (its template's fields, or its reference CSV's header, and the
    family's own documented columns); None when `name` is no table of the family."""
    from pipeline.registries.templates import load_template

    suffix = name.removeprefix(family.split("<")[0])
    if family == "ref_<file>":
        csv = PROJECT_ROOT / "rules" / "reference" / f"{suffix}.csv"
        return set(csv.open(encoding="utf-8").readline().strip().split(",")) if csv.is_file() else None
    if not (PROJECT_ROOT / "schemas" / f"{suffix}.yaml").is_file():
        return None
    template = load_template(suffix)
    fields = {f.key for f in template.fields}
    spec = yaml.safe_load(text_of(PROJECT_ROOT / "schemas" / f"{suffix}.yaml"))
    checks = {c["id"] for c in spec.get("checks") or []} | {"town_agree"} | {f"{k}_checksum" for k in fields}
    allowed = fields | {c for c in documented if "<" not in c}
    if family == "norm_<kind>":
        allowed |= {f"{k}__txt" for k in fields} | {f"{k}__bad" for k in fields} | {f"_chk_{c}" for c in checks}
    return allowed


def test_the_data_dictionary_is_the_store_both_ways(sample):
    """Every table and column documented exists in the sample's store or its published snapshot, with the type
    said; every table and column there is documented; every view is named."""
    deployment, result = sample
    assert result.success
    published = deployment.output / "published" / "litong.duckdb"
    store = store_tables(deployment.db, published)
    documented = {t: cols for t, cols in dictionary().items() if t not in quake_tables()}
    families = {k: v for k, v in documented.items() if "<" in k}
    assert set(families) == {"raw_<kind>", "norm_<kind>", "stg_<kind>", "ref_<file>"}
    problems = []
    for table, columns in store.items():
        family = next((f for f in families if table.startswith(f.split("<")[0])), None)
        if table in documented:
            said = documented[table]
            problems += [f"{table}.{c} not documented" for c in columns if c not in said]
            problems += [f"{table}.{c} documented but not in the store" for c in said if c not in columns]
            problems += [f"{table}.{c} is {ty}, documented {said[c]}" for c, ty in columns.items()
                         if c in said and said[c] != ty]  # fmt: skip
        elif family and (allowed := family_columns(family, table, families[family])) is not None:
            problems += [f"{table}.{c} not documented (family {family})" for c in columns if c not in allowed]
        else:
            problems.append(f"table {table} not documented")
    problems += [f"table {t} documented but not in the store" for t in documented
                 if "<" not in t and t != "parquet" and t not in store]  # fmt: skip
    assert not problems, problems
    views = store_views(deployment.db)
    text = text_of(DICTIONARY)
    named_views = set(re.findall(r"`(v_[a-z0-9_]+)`", text))
    assert views and views == named_views, (sorted(views - named_views), sorted(named_views - views))


def test_the_parquet_export_s_columns_are_documented_in_order(sample):
    deployment, _ = sample
    parquet = deployment.output / "ledger" / "隐患台账.parquet"
    columns = [(c, t) for c, t, *_ in duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{parquet}')").fetchall()]
    assert columns and list(dictionary()["parquet"].items()) == columns


# --- the rule file format ---------------------------------------------------------------------------------------


def field_table(after: str) -> set[str]:
    section = text_of(DOCS / "rules.md").split(after, 1)[1].split("\n## ", 1)[0]
    return {f for cell in re.findall(r"^\| ((?:`[^`]+`(?:, )?)+) \|", section, flags=re.M)
            for f in re.findall(r"`([^`]+)`", cell)}  # fmt: skip


def test_the_rule_fields_documented_are_the_loader_s_and_the_files():
    from pipeline.scoring.ruleset import HAZARD_KEYS, REQUIRED_KEYS, _parse_rule

    used = set()
    for path in (PROJECT_ROOT / "rules").glob("*.yaml"):
        doc = yaml.safe_load(text_of(path))
        if isinstance(doc, dict) and isinstance(doc.get("rules"), list):
            used |= {k for rule in doc["rules"] for k in rule}
    documented = field_table("## A rule's fields")
    assert set(REQUIRED_KEYS) | set(HAZARD_KEYS) <= documented
    assert used <= documented, f"used in rules/*.yaml, not documented: {sorted(used - documented)}"
    # … and every field documented is one the loader takes (an unknown key refuses the rule set).
    rule = {"id": "X1", "title_zh": "示例", "title_en": "example", "when": "TRUE", "points": 1,
            "source": {"ref": "J", "confidence": "J"}, "examples": {"fires": [{}], "silent": []}}  # fmt: skip
    refused = []
    for field in documented - set(rule):
        problems: list[str] = []
        value = {"evidence": [], "hard": False, "hazard": False, "deadline_days": 30, "control_days": 1,
                 "review_days": 30}.get(field, "x")  # fmt: skip
        _parse_rule({**rule, field: value}, "buildings", "x.yaml", problems)
        refused += [p for p in problems if "unknown keys" in p]
    assert not refused, refused


def test_the_kind_fields_documented_are_the_ones_kinds_yaml_uses():
    kinds = yaml.safe_load(text_of(PROJECT_ROOT / "rules" / "kinds.yaml"))
    used = {k for spec in kinds.values() for k in spec}
    assert field_table("## A kind's entry") == used
