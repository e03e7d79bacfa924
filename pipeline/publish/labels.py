"""Town labels that do not overlap: each label is tried on its anchor, then around it, and the first position
whose box meets no other label, legend or text of the axes is taken, measured with the renderer when the figure
is drawn. Imports matplotlib: the charts import this module inside their drawing functions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.artist import Artist
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.transforms import Bbox, IdentityTransform

from pipeline.publish.style import INK, MUTED

# ---------------------------------------------------------------------------------------------
# Where a label may go, tried in this order: on its anchor, then the eight directions around it, each ring
# further out. Offsets in the label's font sizes (em), so the layout is the same at any dpi.
DIRECTIONS = [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1)]
RINGS_EM = [1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.5, 8.0, 10.0]
BOX_PAD = 0.2  # the label's box around its text, in em (as `round,pad=0.2`)


def _candidates() -> list[tuple[float, float]]:
    return [(0.0, 0.0)] + [(dx * r, dy * r) for r in RINGS_EM for dx, dy in DIRECTIONS]


class TownLabels(Artist):
    """Town names at their anchors (lon/lat) on an axes, moved around the anchor where they would overlap
    another label, the legend or any other text of the axes. The positions are chosen when the figure is
    drawn, with the renderer's own measure of each box, so they hold at any size, dpi and layout; the
    choice is deterministic: labels in the order given, candidate positions in a fixed order, the first
    free one taken (if none is, the one overlapping least). A moved label gets a thin line to its anchor; a
    label whose anchor is off the axes is not drawn."""

    def __init__(self, ax, labels: Sequence[tuple[str, float, float]], fontsize: float = 9, boxed: bool = True):
        super().__init__()
        self.set_zorder(6)
        self.set_in_layout(False)
        self.anchors = [(float(x), float(y)) for _, x, y in labels]
        bbox = {"boxstyle": f"round,pad={BOX_PAD}", "fc": "white", "ec": MUTED, "alpha": 0.85} if boxed else None
        self.texts = [Text(0, 0, name, fontsize=fontsize, ha="center", va="center", color=INK, bbox=bbox,
                           gid="town-label") for name, _, _ in labels]  # fmt: skip
        self.moved = [False] * len(self.texts)
        self._ax = ax
        ax.add_artist(self)

    def get_children(self):
        return list(self.texts)

    def _box(self, text, renderer):
        """The text's extent with its box's pad, in pixels."""
        bb = text.get_window_extent(renderer)
        pad = renderer.points_to_pixels(text.get_fontsize()) * (BOX_PAD if text.get_bbox_patch() else 0.05)
        return Bbox.from_extents(bb.x0 - pad, bb.y0 - pad, bb.x1 + pad, bb.y1 + pad)

    def _obstacles(self, renderer) -> list:
        """The axes' other texts (the attribution, notes) and its legend, which labels must leave free."""
        found = [t.get_window_extent(renderer) for t in self._ax.texts if t.get_visible() and t.get_text()]
        legend = self._ax.get_legend()
        if legend is not None and legend.get_visible():
            found.append(legend.get_window_extent(renderer))
        return found

    def draw(self, renderer):
        if not self.get_visible():
            return
        area = self._ax.bbox
        placed = self._obstacles(renderer)
        em = renderer.points_to_pixels(1.0)
        for i, (text, anchor) in enumerate(zip(self.texts, self.anchors, strict=True)):
            text.set_figure(self.figure)
            text.set_transform(IdentityTransform())
            ax_, ay_ = self._ax.transData.transform(anchor)
            text.set_visible(bool(np.isfinite([ax_, ay_]).all() and area.contains(ax_, ay_)))
            if not text.get_visible():
                continue  # a town whose centre is off the map (or unknown) is not labelled in the margin
            size = text.get_fontsize() * em
            best, best_cost = None, np.inf
            for dx, dy in _candidates():
                text.set_position((ax_ + dx * size * 1.2, ay_ + dy * size))
                box = self._box(text, renderer)
                outside = not (area.x0 <= box.x0 and box.x1 <= area.x1 and area.y0 <= box.y0 and box.y1 <= area.y1)
                cost = sum(_overlap(box, other) for other in placed) + (1e9 if outside else 0.0)
                if cost < best_cost:
                    best, best_cost = (dx, dy), cost
                if cost == 0:
                    break
            dx, dy = best
            text.set_position((ax_ + dx * size * 1.2, ay_ + dy * size))
            placed.append(self._box(text, renderer))
            self.moved[i] = (dx, dy) != (0.0, 0.0)
            if self.moved[i]:
                x, y = text.get_position()
                leader = Line2D([ax_, x], [ay_, y], transform=IdentityTransform(), lw=0.5, color=MUTED)
                leader.set_figure(self.figure)
                leader.draw(renderer)
            text.draw(renderer)
        self.stale = False

    def boxes(self, renderer) -> list:
        """The labels' boxes as drawn last (for checks)."""
        return [self._box(t, renderer) for t in self.texts]


GAP_PX = 1.0  # boxes closer than this count as meeting


def _overlap(a, b) -> float:
    """How much two boxes meet: the area they share, grown by the gap (0 when they are further apart)."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0) + GAP_PX
    h = min(a.y1, b.y1) - max(a.y0, b.y0) + GAP_PX
    return w * h if w > 0 and h > 0 else 0.0
