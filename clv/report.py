"""One self-contained HTML report: inline SVG charts we draw ourselves, no scripts, no server.

Why not matplotlib: four bar/line charts do not justify a ~40 MB dependency, and SVG text
stays sharp, searchable and small. Everything user-supplied is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clv import gamma_gamma, segments
from clv.pipeline import ClvResult

PALETTE = ("#2f6db5", "#e08a2e", "#3a9a5b", "#c0392b", "#8e6bbf", "#7f8c8d", "#d4ac0d")
W, H = 640, 300
PAD_L, PAD_R, PAD_T, PAD_B = 150, 20, 30, 40


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _fmt(value: float) -> str:
    a = abs(value)
    if a >= 1e6:
        return f"{value / 1e6:.1f}M"
    if a >= 1e4:
        return f"{value / 1e3:.0f}k"
    if a >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if a else "0"


def _short(value: float) -> str:
    """Axis-label form: 2k, 1.5M, 250."""
    a = abs(value)
    if a >= 1e6:
        return f"{value / 1e6:g}M"
    if a >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def _svg_open(title: str, width: int, height: int) -> list[str]:
    return [
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{_esc(title)}">',
        f'<text x="10" y="18" class="t">{_esc(title)}</text>',
    ]


def _text(x: float, y: float, text: str, anchor: str = "start", cls: str = "") -> str:
    extra = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{_esc(text)}</text>'


def _nice_max(value: float) -> float:
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * exp:
            return float(step * exp)
    return float(10 * exp)


def hbar_chart(
    title: str, labels: Sequence[str], values: Sequence[float], color: str = PALETTE[0]
) -> str:
    """Horizontal bars with value labels."""
    n = max(len(labels), 1)
    row = 26
    height = PAD_T + n * row + 30
    vmax = _nice_max(max(values, default=0.0))
    plot_w = W - PAD_L - PAD_R - 60
    parts = _svg_open(title, W, height)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = PAD_T + i * row
        w = max(0.0, value / vmax * plot_w)
        parts.append(f'<text x="{PAD_L - 8}" y="{y + 17}" text-anchor="end">{_esc(label)}</text>')
        parts.append(
            f'<rect x="{PAD_L}" y="{y + 4}" width="{w:.1f}" height="{row - 8}" fill="{color}"/>'
        )
        parts.append(
            f'<text x="{PAD_L + w + 6:.1f}" y="{y + 17}" class="v">{_esc(_fmt(value))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def vbar_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    x_label: str,
    y_label: str,
) -> str:
    """Vertical grouped bars (one group per category, one bar per series) with a legend."""
    plot_l, plot_r = 60, W - 20
    plot_t, plot_b = PAD_T + 20, H - PAD_B
    vmax = _nice_max(max((v for _, vals in series for v in vals), default=0.0))
    n_cat, n_ser = max(len(categories), 1), max(len(series), 1)
    group_w = (plot_r - plot_l) / n_cat
    bar_w = group_w * 0.8 / n_ser
    parts = _svg_open(title, W, H)
    parts += _y_axis(plot_l, plot_r, plot_t, plot_b, vmax, y_label)
    for s_i, (name, values) in enumerate(series):
        color = PALETTE[s_i % len(PALETTE)]
        for c_i, value in enumerate(values):
            h = max(0.0, value / vmax * (plot_b - plot_t))
            x = plot_l + c_i * group_w + group_w * 0.1 + s_i * bar_w
            parts.append(
                f'<rect x="{x:.1f}" y="{plot_b - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{_esc(name)} {_esc(categories[c_i])}: {value:.3f}'
                "</title></rect>"
            )
        lx = plot_l + 10 + s_i * 150
        parts.append(f'<rect x="{lx}" y="{PAD_T - 4}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{lx + 16}" y="{PAD_T + 7}">{_esc(name)}</text>')
    for c_i, cat in enumerate(categories):
        x = plot_l + (c_i + 0.5) * group_w
        parts.append(f'<text x="{x:.1f}" y="{plot_b + 15}" text-anchor="middle">{_esc(cat)}</text>')
    parts.append(_text((plot_l + plot_r) / 2, H - 6, x_label, "middle"))
    parts.append("</svg>")
    return "".join(parts)


def _y_axis(
    plot_l: float, plot_r: float, plot_t: float, plot_b: float, vmax: float, label: str
) -> list[str]:
    parts = []
    for k in range(6):
        v = vmax * k / 5
        y = plot_b - (plot_b - plot_t) * k / 5
        parts.append(f'<line x1="{plot_l}" x2="{plot_r}" y1="{y:.1f}" y2="{y:.1f}" class="g"/>')
        parts.append(
            f'<text x="{plot_l - 6}" y="{y + 4:.1f}" text-anchor="end">{_esc(_fmt(v))}</text>'
        )
    parts.append(
        f'<text transform="translate(14 {(plot_t + plot_b) / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle">{_esc(label)}</text>'
    )
    return parts


def line_chart(
    title: str,
    xs: Sequence[float],
    series: Sequence[tuple[str, Sequence[float]]],
    x_label: str,
    y_label: str,
    marker_x: float | None = None,
) -> str:
    """Lines over a shared x axis, with an optional dashed vertical marker."""
    plot_l, plot_r = 60, W - 20
    plot_t, plot_b = PAD_T + 20, H - PAD_B
    xmax = max(xs, default=1.0) or 1.0
    vmax = _nice_max(max((v for _, vals in series for v in vals), default=0.0))

    def px(x: float) -> float:
        return plot_l + x / xmax * (plot_r - plot_l)

    def py(v: float) -> float:
        return plot_b - v / vmax * (plot_b - plot_t)

    parts = _svg_open(title, W, H)
    parts += _y_axis(plot_l, plot_r, plot_t, plot_b, vmax, y_label)
    step = _nice_max(xmax / 6)
    for k in range(int(xmax // step) + 1):
        parts.append(_text(px(k * step), plot_b + 15, _fmt(k * step), "middle"))
    if marker_x is not None:
        mx = px(marker_x)
        parts.append(f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{plot_t}" y2="{plot_b}" class="m"/>')
        right = mx > plot_r - 100  # keep the label inside the plot
        parts.append(
            _text(
                mx - 4 if right else mx + 4,
                plot_t + 12,
                "calibration end",
                "end" if right else "start",
            )
        )
    for s_i, (name, values) in enumerate(series):
        color = PALETTE[s_i % len(PALETTE)]
        points = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in zip(xs, values, strict=True))
        dash = ' stroke-dasharray="6 4"' if s_i else ""
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"{dash}/>'
        )
        lx = plot_l + 10 + s_i * 150
        parts.append(
            f'<line x1="{lx}" x2="{lx + 14}" y1="{PAD_T + 2}" y2="{PAD_T + 2}" '
            f'stroke="{color}" stroke-width="3"/>'
        )
        parts.append(f'<text x="{lx + 18}" y="{PAD_T + 7}">{_esc(name)}</text>')
    parts.append(_text((plot_l + plot_r) / 2, H - 6, x_label, "middle"))
    parts.append("</svg>")
    return "".join(parts)


def spend_frequency_correlation(result: ClvResult) -> float:
    """corr(frequency, average repeat spend) over repeat customers: the independence check of
    Fader, Hardie & Lee (2005, sec. 2.2); 0 when it cannot be computed."""
    s = result.summary
    repeat = s.frequency > 0
    x, m = s.frequency[repeat], s.monetary[repeat]
    if x.size < 3 or np.std(x) == 0 or np.std(m) == 0:
        return 0.0
    return float(np.corrcoef(x, m)[0, 1])


def segment_table(result: ClvResult) -> list[tuple[str, int, float, float]]:
    """(segment, customers, total CLV, mean CLV) in rule order, empty segments omitted."""
    names = np.asarray(result.segment)
    rows = []
    for name in segments.SEGMENT_NAMES:
        mask = names == name
        count = int(mask.sum())
        if count:
            total = float(result.clv[mask].sum())
            rows.append((name, count, total, total / count))
    return rows


def _clv_histogram(values: np.ndarray) -> tuple[list[str], list[float]]:
    if values.size == 0:
        return [], []
    cap = float(np.quantile(values, 0.99))
    cap = _nice_max(cap) if cap > 0 else 1.0
    edges = np.linspace(0.0, cap, 11)
    counts, _ = np.histogram(np.clip(values, 0.0, cap), bins=edges)  # last bin holds > cap
    labels = [f"{_short(edges[i])}–{_short(edges[i + 1])}" for i in range(10)]
    labels[-1] = f"≥ {_short(edges[9])}"
    return labels, [float(c) for c in counts]


def _holdout_by_frequency(result: ClvResult) -> tuple[list[str], list[float], list[float]] | None:
    s = result.summary
    if result.holdout_expected is None:
        return None
    cats, actual, predicted = [], [], []
    for k in range(8):
        mask = s.frequency == k if k < 7 else s.frequency >= 7
        if not mask.any():
            continue
        cats.append(str(k) if k < 7 else "7+")
        actual.append(float(s.holdout_frequency[mask].mean()))
        predicted.append(float(result.holdout_expected[mask].mean()))
    return cats, actual, predicted


CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1320px;color:#222}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:24px 0 8px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(640px,1fr));gap:12px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px;background:#fff}
svg{max-width:100%;height:auto;font-size:12px} svg .t{font-weight:600;font-size:14px}
svg .g{stroke:#e5e5e5} svg .v{fill:#444} svg .m{stroke:#999;stroke-dasharray:4 4}
table{border-collapse:collapse;font-size:13px}
td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child,.l{text-align:left} .muted{color:#666}
"""


def _validation(result: ClvResult) -> tuple[str, list[str]]:
    """The holdout sentence and charts (empty when the data has no holdout period)."""
    s = result.summary
    charts: list[str] = []
    text = ""
    by_freq = _holdout_by_frequency(result)
    # a holdout shorter than a week (e.g. the as-of day itself) says nothing: leave it out
    if by_freq is not None and result.holdout_expected is not None and s.holdout_weeks >= 1:
        cats, actual, predicted = by_freq
        title = (
            f"Holdout purchases per customer by calibration frequency ({s.holdout_weeks:.0f} wk)"
        )
        charts.append(
            vbar_chart(
                title,
                cats,
                [("actual", actual), ("BG/NBD expected", predicted)],
                "repeat purchases in calibration",
                "mean holdout purchases",
            )
        )
        total_actual = int(s.holdout_frequency.sum())
        total_pred = float(result.holdout_expected.sum())
        gap = (total_pred / total_actual - 1) * 100 if total_actual else 0.0
        varies = s.size > 1 and np.std(s.holdout_frequency) > 0
        corr = (
            float(np.corrcoef(result.holdout_expected, s.holdout_frequency)[0, 1])
            if varies
            else 0.0
        )
        text = (
            f"<p>Holdout {_esc(result.options.calibration_end)} → {_esc(s.holdout_end)}: "
            f"{total_actual:,} actual repeat purchases vs {total_pred:,.1f} expected "
            f"({gap:+.1f}%); "
            f"correlation of expected and actual per customer {corr:.3f}.</p>"
        )
    tr = result.tracking
    if tr is not None:
        step = max(1, len(tr.weeks) // 120)
        charts.append(
            line_chart(
                f"Cumulative repeat purchases since {tr.start}",
                list(tr.weeks[::step]),
                [
                    ("actual", list(tr.actual[::step])),
                    ("BG/NBD expected", list(tr.expected[::step])),
                ],
                "week",
                "repeat purchases",
                marker_x=tr.calibration_weeks,
            )
        )
    return text, charts


def _row(cells: Sequence[object], left: Sequence[int] = (0,), head: bool = False) -> str:
    tag = "th" if head else "td"
    return (
        "<tr>"
        + "".join(
            f"<{tag}{' class=l' if i in left else ''}>{_esc(c)}</{tag}>"
            for i, c in enumerate(cells)
        )
        + "</tr>"
    )


def render_html(result: ClvResult) -> str:
    """The whole report as one HTML string."""
    s = result.summary
    o = result.options
    b, g = result.bgnbd.params, result.gamma_gamma.params
    seg_rows = segment_table(result)
    names = [r[0] for r in seg_rows]
    charts = [
        hbar_chart("Customers per segment", names, [r[1] for r in seg_rows]),
        hbar_chart("Total CLV per segment", names, [r[2] for r in seg_rows], PALETTE[2]),
    ]
    labels, counts = _clv_histogram(result.clv)
    charts.append(
        vbar_chart("CLV distribution", labels, [("customers", counts)], "CLV", "customers")
    )
    top = sorted(range(s.size), key=lambda i: (-result.clv[i], s.customer_ids[i]))[:15]
    charts.append(
        hbar_chart(
            "Top 15 customers by CLV",
            [s.customer_ids[i][:20] for i in top],
            [float(result.clv[i]) for i in top],
            PALETTE[1],
        )
    )
    validation, validation_charts = _validation(result)
    charts += validation_charts
    rules = "".join(_row((r.name, r.rule), left=(0, 1)) for r in segments.RULES)
    seg_html = "".join(_row((n, f"{c:,}", f"{t:,.2f}", f"{m:,.2f}")) for n, c, t, m in seg_rows)
    top_head = ["customer", "segment", "x", "recency (wk)", "T (wk)", "avg repeat spend"]
    top_head += ["P(alive)", "E[purchases]", "CLV"]
    top_html = _row(top_head, left=(0, 1), head=True) + "".join(
        _row(
            (
                s.customer_ids[i],
                result.segment[i],
                int(s.frequency[i]),
                f"{s.recency[i]:.1f}",
                f"{s.T[i]:.1f}",
                s.monetary_decimal(i),
                f"{result.p_alive[i]:.3f}",
                f"{result.expected_purchases[i]:.2f}",
                f"{result.clv[i]:,.2f}",
            ),
            left=(0, 1),
        )
        for i in top
    )
    repeaters = int(np.count_nonzero(s.frequency))
    facts = [
        f"model {result.model_version}",
        f"computed {result.computed_at.isoformat(timespec='seconds')}",
        f"{s.size:,} customers ({repeaters:,} with repeat purchases)",
        f"calibration to {o.calibration_end}",
        f"horizon {o.horizon_days} days",
        f"monthly discount {o.monthly_discount_rate:g}",
        f"margin {o.margin:g}",
        f"total CLV {float(result.clv.sum()):,.2f}",
    ]
    params = (
        f"BG/NBD r={b.r:.4f}, α={b.alpha:.4f}, a={b.a:.4f}, b={b.b:.4f} "
        f"(LL {result.bgnbd.log_likelihood:,.1f}); Gamma-Gamma p={g.p:.3f}, q={g.q:.3f}, "
        f"γ={g.v:.3f} (LL {result.gamma_gamma.log_likelihood:,.1f}), population mean spend "
        f"{gamma_gamma.population_mean_spend(g):,.2f}. Gamma-Gamma assumes spend is independent "
        f"of frequency: their correlation over repeat customers is "
        f"{spend_frequency_correlation(result):.2f} (near 0 is good; CDNOW: 0.11)."
    )
    seg_head = _row(("segment", "customers", "total CLV", "mean CLV"), head=True)
    rule_head = _row(
        ("segment", "rule (R, F, M: quintile scores 1-5; first match wins)"), (0, 1), True
    )
    cards = "".join(f"<div class=card>{c}</div>" for c in charts)
    body = (
        "<h1>Customer lifetime value</h1>"
        f"<p class=muted>{_esc(' · '.join(facts))}</p><p>{_esc(params)}</p>{validation}"
        f"<div class=grid>{cards}</div><h2>Segments</h2><div class=grid>"
        f"<div class=card><table>{seg_head}{seg_html}</table></div>"
        f"<div class=card><table>{rule_head}{rules}</table></div></div>"
        f"<h2>Top customers</h2><table>{top_html}</table>"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Customer lifetime value · {_esc(o.calibration_end)}</title>"
        f"<style>{CSS}</style></head><body>{body}</body></html>\n"
    )


def write_report(result: ClvResult, path: Path) -> Path:
    """Write the report atomically (temp file then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_html(result), encoding="utf-8")
    tmp.replace(path)
    return path
