"""The sample survey's tables: names, places and mixes, as YAML files beside this module.

Each file is read once. Mappings keep the file's order, which the seeded draws follow.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent


@functools.cache
def load(name: str) -> dict[str, Any]:
    """The table file `<name>.yaml` as plain Python: dicts, lists, strings and numbers."""
    with open(HERE / f"{name}.yaml", encoding="utf-8") as f:
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
