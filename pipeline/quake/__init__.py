"""After a felt earthquake (work point 11): the shaking, the objects it touched, the 首报 and the 排查清单.

event.py (what was declared) -> shaking.py (intensity at a point) -> exposure.py (every asset of the last
published ledger, shaken, into the quake store) -> reports.py (首报, 排查清单, map) -> assets.py (one Dagster
dynamic partition per event). It reads the survey stages only through the published snapshot.
"""
