"""What the stages ask of an engine (issue 31): the `Engine` protocol and what passes through it.

The implementations are pipeline/engines/duckdb.py and pipeline/engines/spark/engine.py; the one place an engine
is chosen is pipeline/engines/seam.py (`current()`). This module imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import pandas as pd

if TYPE_CHECKING:
    from pipeline.engines.expectations import Expectation
    from pipeline.registries.templates import Template


class RuleSetError(Exception):
    """The rule set is refused (by its loader, or by an engine that cannot run it); the message lists each
    problem as `file: rule: what`. Also importable as pipeline.scoring.ruleset.RuleSetError."""


class RuleSetLike(Protocol):
    """What the engines read of the rule set (pipeline/scoring/ruleset.py's RuleSet): its rules, kinds, version
    and folder, and the methods by which it installs itself and its examples into a store. The engines name
    this, not the scoring stage's class, so they import nothing of the stages."""

    rules: list[Any]
    kinds: dict[str, Any]
    version: str
    rules_dir: Path

    def for_kind(self, kind: str) -> list[Any]: ...

    def install(self, con: duckdb.DuckDBPyConnection) -> None: ...

    def load_example(self, con: duckdb.DuckDBPyConnection, spec: Any, example: dict) -> None: ...

    def example_source(self, con: duckdb.DuckDBPyConnection, spec: Any) -> str: ...

    def clear_examples(self, con: duckdb.DuckDBPyConnection, spec: Any) -> None: ...


SCORING_INPUT = "scoring_input"  # temp table: one scan of the kind's view with the rules that fire


@dataclass(frozen=True)
class ScoringJob:
    """One scoring of a kind, as the scoring stage hands it to an engine: its SQL (DuckDB's dialect; an engine
    that speaks another translates it) and the rule set whose views and reference tables it reads."""

    ruleset: RuleSetLike  # the engines read its views, kinds and examples
    kind: str
    run_id: str
    input_select: str  # the scan of the whole view: asset, identity, the rules that fire (`hits`)
    input_sql: tuple[str, ...]  # in the store: the scan of the assets to score, into SCORING_INPUT
    findings_select: str  # over SCORING_INPUT: one row per asset and rule that fires
    scores_sql: str  # a SELECT of the scores over this run's findings (portable: Spark runs it)
    scores_from_hits: str  # the same scores from SCORING_INPUT's hits alone, in one streaming pass (DuckDB)
    tables: tuple[str, ...]  # the staging tables the kind's view reads
    staging_context: Callable[[str], str]  # a staging table -> what its rows' normalisation depended on

    @property
    def findings_row(self) -> str:
        """The findings as the store keeps them: with the run, the rule set version and the kind."""
        return (
            f"SELECT '{self.run_id}' AS run_id, '{self.ruleset.version}' AS ruleset_version, "
            f"'{self.kind}' AS kind, * FROM ({self.findings_select})"
        )


class Engine(Protocol):
    """What a stage asks of an engine."""

    name: str

    def validate_rows(
        self, con: duckdb.DuckDBPyConnection, table: str, t: Template, expectations: list[Expectation]
    ) -> tuple[pd.DataFrame, bool]:
        """The expectations over the rows of `table` (it has `_row_key`): one row per (row key, failed check)
        with the check id, columns and the receipt's reason, and whether everything passed."""

    def rule_problems(self, ruleset: RuleSetLike, kind: str) -> list[str]:
        """What of the kind's rules this engine cannot run, by rule (checked when the rule set is loaded)."""

    def score_input(self, con: duckdb.DuckDBPyConnection, job: ScoringJob) -> None:
        """Publish what the kind reads where the engine reads it, compute the scan of its view, and leave it in
        the store's temporary table SCORING_INPUT (the enterprises and the ledger read it there)."""

    def insert_results(self, con: duckdb.DuckDBPyConnection, job: ScoringJob) -> None:
        """Inside the store's transaction: the run's findings and scores into `findings` and `scores`."""

    def finish(self, job: ScoringJob) -> None:
        """After the store committed the run: drop what the engine kept of earlier runs."""

    def scores_whole_kinds(self) -> bool:
        """Whether the engine always scores a kind whole (it cannot score some of its assets again)."""
