"""Line charts as inline SVG, drawn on the server: no JavaScript, nothing fetched, and the
numbers are in the page (each chart's last value and its peak are printed beside it)."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

from .history import Points

WIDTH, HEIGHT = 320, 80


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    svg: Markup
    last: float | None
    peak: float | None


def chart(title: str, points: Points, start: float, end: float) -> Chart:
    """``points`` between ``start`` and ``end`` (epoch seconds), scaled to the peak; the
    left edge is the first point when the points begin later (a console just started)."""
    shown = [(t, v) for t, v in points if start <= t <= end]
    peak = max((v for _, v in shown), default=None)
    last = shown[-1][1] if shown else None
    if len(shown) > 1:
        start = shown[0][0]
    span = max(end - start, 1e-9)
    top = peak if peak else 1.0

    def xy(t: float, v: float) -> str:
        x = (t - start) / span * WIDTH
        y = HEIGHT - 2 - v / top * (HEIGHT - 4)
        return f"{x:.1f},{y:.1f}"

    line = " ".join(xy(t, v) for t, v in shown)
    body = (f'<polyline class="line" points="{line}"/>' if len(shown) > 1 else
            f'<circle class="dot" cx="{xy(*shown[0]).split(",")[0]}" '
            f'cy="{xy(*shown[0]).split(",")[1]}" r="2"/>' if shown else
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" '
            'class="none">no samples yet</text>')
    back = f'<text x="3" y="{HEIGHT - 4}" class="axis">−{_ago(end - start)}</text>'
    svg = Markup(f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
                 f'aria-label="{escape(title)}" data-points="{len(shown)}">'
                 f'<rect class="frame" x="0" y="0" width="{WIDTH}" height="{HEIGHT}"/>'
                 f'{body}{back if shown else ""}</svg>')
    return Chart(title, svg, last, peak)


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 7200 else f"{seconds / 3600:.0f}h"
