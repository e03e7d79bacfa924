"""What a chart or the briefing shows, as a fingerprint: drawn again only when it changed (issue 30).

The coarse check (pipeline/publish/assets.py `publish_inputs`) sees the ledger's last event: any hazard
changed, every chart is stale. Most such changes leave a chart's figures as they were (a resurveyed building
whose hazards stay the same, a feedback row in a town the chart does not show). Reading a chart's figures
is a few grouped queries; drawing and saving it is matplotlib's seconds. So a stale chart's figures are
read first, and it is drawn only when their fingerprint differs from the one recorded with the picture.

The fingerprint covers everything the drawing reads: the chart's table, what its draw reads besides the
table (`Chart.reads`), the total its check compares with, the as-of label in its footer, and the publishing
code (layout, fonts, colours).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from pipeline.platform import stage_inputs
from pipeline.platform.clock import as_of_label
from pipeline.publish.charts import CHARTS_BY_NAME, Chart
from pipeline.publish.inputs import PublishInputs


def frame_fingerprint(df: pd.DataFrame) -> str:
    """The values of `df` (its columns, types and rows, in any row order: a grouped query's order is not
    fixed and the drawings sort what they show). Numbers and strings are hashed as they are (the map's 200 k
    cells at 1 M assets in 0.03 s; as text, 0.3 s); only columns of Python objects go through their text."""
    h = hashlib.sha256(repr([(str(c), str(t)) for c, t in df.dtypes.items()]).encode())
    if len(df):
        objects = {c: str for c, t in df.dtypes.items() if pd.api.types.is_object_dtype(t)}
        rows = np.sort(pd.util.hash_pandas_object(df.astype(objects) if objects else df, index=False).to_numpy())
        h.update(rows.tobytes())
    return h.hexdigest()[:32]


def _common(inp: PublishInputs) -> list:
    return [as_of_label(inp.as_of), stage_inputs.code_version("pipeline/publish")]


def chart_figures(chart: Chart, inp: PublishInputs) -> str:
    """What `chart` draws from `inp`, as a fingerprint."""
    reads = [frame_fingerprint(getattr(inp, name)) for name in chart.reads]
    return stage_inputs.fingerprint(chart.name, frame_fingerprint(chart.table(inp)), reads,
                                    chart.expected_total(inp), _common(inp))  # fmt: skip


def briefing_figures(inp: PublishInputs) -> str:
    """What the briefing shows (headline tiles, its three charts, the overdue 重大隐患, the shelter line),
    as a fingerprint."""
    from pipeline.publish.briefing import BRIEFING_CHARTS, headline, overdue_major, shelter_line

    head = headline(inp)
    tables = [frame_fingerprint(CHARTS_BY_NAME[name].table(inp)) for name in BRIEFING_CHARTS]
    return stage_inputs.fingerprint("briefing", repr(head), tables, frame_fingerprint(overdue_major(inp)),
                                    shelter_line(inp), _common(inp))  # fmt: skip
