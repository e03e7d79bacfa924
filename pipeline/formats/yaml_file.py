"""The survey's definitions as YAML (schemas/, rules/, reference/): read with libyaml's parser when PyYAML has it.

The same safe loader (the same types, the same values), only its scanner and parser in C: the 24 files of schemas/
and rules/ parse in 0.17 s instead of 2.0 s, and every process that loads the Dagster definitions reads them
(issue 30: a run's start-up).
"""

from __future__ import annotations

from typing import IO, Any

import yaml

SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(source: str | bytes | IO) -> Any:
    """As yaml.safe_load."""
    return yaml.load(source, Loader=SafeLoader)  # noqa: S506 (a safe loader)
