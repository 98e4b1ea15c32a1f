"""Inline SVG charts for the fleet page: drawn on the server, no script, no external resource."""

from __future__ import annotations

from markupsafe import Markup, escape


def sparkline(points: list[tuple[float, float | None]], t0: float, t1: float, unit: str = "",
              width: int = 220, height: int = 44, limit: float | None = None) -> Markup:
    """An inline SVG line chart of (epoch seconds, value) over [t0, t1]; gaps where values are missing."""
    vals = [v for _, v in points if v is not None]
    if not vals:
        return Markup(f'<svg class="spark" width="{width}" height="{height}" role="img" aria-label="no data">'
                      f'<text x="4" y="{height // 2 + 4}" class="spark-empty">no data</text></svg>')
    lo, hi = min(vals + ([limit] if limit is not None else [])), max(vals + ([limit] if limit is not None else []))
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    pad = 3

    def xy(t: float, v: float) -> str:
        x = pad + (width - 2 * pad) * (t - t0) / max(t1 - t0, 1)
        y = height - pad - (height - 2 * pad) * (v - lo) / (hi - lo)
        return f"{x:.1f},{y:.1f}"

    segments, seg = [], []
    for t, v in points:
        if v is None:
            if seg:
                segments.append(seg)
            seg = []
        else:
            seg.append(xy(t, v))
    if seg:
        segments.append(seg)
    parts = [f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'preserveAspectRatio="none" role="img" '
             f'aria-label="last {vals[-1]:.1f}{escape(unit)}, min {min(vals):.1f}, max {max(vals):.1f}">']
    if limit is not None:
        y = xy(t0, limit).split(",")[1]
        parts.append(f'<line class="spark-limit" x1="{pad}" x2="{width - pad}" y1="{y}" y2="{y}"/>')
    for s in segments:
        if len(s) == 1:
            x, y = s[0].split(",")
            parts.append(f'<circle class="spark-dot" cx="{x}" cy="{y}" r="1.8"/>')
        else:
            parts.append(f'<polyline class="spark-line" points="{" ".join(s)}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
