"""The monitoring report: numbers from telemetry events, their readings, and a self-contained HTML page."""

from __future__ import annotations

import base64
import html
import io
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .config import Config, load_routing_sections

__all__ = ["compute_metrics", "load_report_config", "readings", "render_html"]


def load_report_config(source: str | Path | dict) -> Config:
    """The routing config as the report reads it: the pools' prices (`model_list`) and the telemetry URL
    (`taskrouter.telemetry.url`).

    As for the proxy hook, only the `model_list` and `taskrouter` sections are read, so it may be the proxy's own
    config.yaml (its `litellm_settings.callbacks`, `general_settings` are ignored). Unlike a router, the report
    calls no provider: an `os.environ/NAME` secret of a deployment need not be set, and is never read (the
    telemetry URL's own is resolved where it is used). Pool references are not checked: the report routes
    nothing.
    """
    return load_routing_sections(source, calls_providers=False)


def _pool_prices(config: Config | None, pool: str) -> tuple[float, float] | None:
    """(input, output) USD per token of a pool's first priced deployment."""
    if config is None:
        return None
    for d in config.model_list:
        p = d.litellm_params
        if d.model_name == pool and "input_cost_per_token" in p and "output_cost_per_token" in p:
            return float(p["input_cost_per_token"]), float(p["output_cost_per_token"])
    return None


def compute_metrics(
    events: Sequence[dict[str, Any]], *, config: Config | None = None, baseline_pool: str = "capable"
) -> dict[str, Any]:
    """The report's numbers. `baseline_cost_usd` prices every request's tokens at `baseline_pool`'s rates."""
    n = len(events)
    ok = [e for e in events if e["status"] == "success"]
    served = Counter(e["served_pool"] for e in ok)
    requested = Counter(e["requested_pool"] for e in events)
    fallbacks = Counter(e["requested_pool"] for e in events if e["fallback"])
    cost: dict[str, float] = defaultdict(float)
    for e in ok:
        cost[e["served_pool"]] += e["cost_usd"] or 0.0
    prices = _pool_prices(config, baseline_pool)
    baseline = (
        sum((e["input_tokens"] or 0) * prices[0] + (e["output_tokens"] or 0) * prices[1] for e in ok)
        if prices
        else None
    )
    by_period: dict[str, list[bool]] = defaultdict(list)
    span = (events[-1]["ts"] - events[0]["ts"]).total_seconds() if n > 1 else 0
    fmt = "%Y-%m-%d" if span > 2 * 86400 else "%Y-%m-%d %H:00"
    for e in events:
        by_period[e["ts"].strftime(fmt)].append(bool(e["escalated"]))
    stages = Counter(e["stage"] for e in events)
    labels = Counter(e["label"] or "(none)" for e in events)
    return {
        "requests": n,
        "succeeded": len(ok),
        "failed": n - len(ok),
        "label_distribution": {k: c / n for k, c in labels.most_common()} if n else {},
        "pool_distribution": {p: c / len(ok) for p, c in served.most_common()} if ok else {},
        "requested_distribution": {p: c / n for p, c in requested.most_common()} if n else {},
        "fallback_rate": {p: fallbacks[p] / c for p, c in requested.items()},
        "cost_usd": dict(sorted(cost.items())),
        "total_cost_usd": sum(cost.values()),
        "baseline_pool": baseline_pool,
        "baseline_cost_usd": baseline,
        "escalation_rate": sum(bool(e["escalated"]) for e in events) / n if n else 0.0,
        "held_back_rate": sum(bool(e.get("held_back")) for e in events) / n if n else 0.0,
        "escalation_over_time": {k: sum(v) / len(v) for k, v in sorted(by_period.items())},
        "stage_coverage": {s: c / n for s, c in stages.most_common()} if n else {},
        "error_classes": dict(Counter(e["error_class"] for e in events if e["error_class"])),
        "escalated_sample": [
            {
                "text": e["query_text"],
                "label": e["label"],
                "confidence": e["confidence"],
                "served_pool": e["served_pool"],
            }
            for e in events
            if e["escalated"] and e["query_text"]
        ][:25],
    }


def readings(m: dict[str, Any]) -> dict[str, str]:
    """What each metric says about the deployment (the rules of thumb the report prints next to it)."""
    out = {}
    by_label = m["label_distribution"]
    if by_label:
        label, share = next(iter(by_label.items()))  # most common first
        out["label_distribution"] = (
            f"Most common label: {label!r} with {share:.0%} of requests; {len(by_label)} label(s) seen."
        )
    dist = m["pool_distribution"]
    top = max(dist.items(), key=lambda kv: kv[1]) if dist else None
    if top and top[0] == m["baseline_pool"] and top[1] > 0.9:
        out["pool_distribution"] = (
            f"{top[1]:.0%} of traffic is served by {top[0]!r}: the classifier is too "
            "conservative (or fallbacks hide failing pools); review escalations."
        )
    elif top:
        out["pool_distribution"] = f"Largest pool: {top[0]!r} with {top[1]:.0%} of served traffic."
    busy = {p: r for p, r in m["fallback_rate"].items() if r > 0.05}
    if busy:
        out["fallback_rate"] = (
            "Frequent fallbacks from "
            + ", ".join(f"{p!r} ({r:.0%})" for p, r in busy.items())
            + ": the pool is under-sized, rate-limited or failing; add deployments or capacity."
        )
    elif any(m["fallback_rate"].values()):
        out["fallback_rate"] = "Fallbacks are rare (≤ 5 % per pool): pools are sized for the traffic."
    elif not m["requests"]:
        out["fallback_rate"] = "No requests in this period."
    else:
        out["fallback_rate"] = "No fallbacks in this period: every request served went to the pool it was routed to."
    baseline = m["baseline_cost_usd"]
    if baseline is None:
        out["cost_usd"] = f"No prices for {m['baseline_pool']!r} in the config: no baseline to compare against."
    elif not baseline:  # priced, but no successful request used a token: there is nothing to compare
        out["cost_usd"] = (
            f"Routing cost ${m['total_cost_usd']:.4f}; the baseline (everything on {m['baseline_pool']!r}) has no "
            "tokens to price: "
            + ("no request succeeded in this period." if not m["succeeded"] else "no successful request used tokens.")
        )
    else:
        saved = 1 - m["total_cost_usd"] / baseline
        out["cost_usd"] = (
            f"Routing cost ${m['total_cost_usd']:.4f} against ${baseline:.4f} for "
            f"sending everything to {m['baseline_pool']!r}: {saved:.0%} "
            + ("saved." if saved >= 0 else "more: specialised pools cost more than the baseline.")
        )
    rate = m["escalation_rate"]
    out["escalation_rate"] = f"{rate:.0%} of queries escalated past the embedding classifier: " + (
        "high: traffic has drifted from the training data; export escalations "
        "(taskrouter review export), label them and retrain."
        if rate > 0.2
        else "within the expected range."
    )
    held = m.get("held_back_rate", 0.0)
    if held:
        out["held_back_rate"] = (
            f"{held:.0%} of queries were below the threshold but held back by the escalation budget "
            "(`max_escalation`): their stage-2 guess was served. Raise the budget, or label them and retrain."
        )
    errors = m.get("error_classes") or {}
    if errors:
        out["error_classes"] = (
            f"{m['failed']} request(s) failed. Errors by class: "
            + ", ".join(f"{name} {count}" for name, count in _most_common(errors))
            + " (a request answered after a retry or fallback counts its failed attempt's error too)."
        )
    coverage = m["stage_coverage"]  # stage name -> share, most common first
    if coverage:
        out["stage_coverage"] = (
            "Decided by stage: "
            + ", ".join(f"{stage} {share:.0%}" for stage, share in coverage.items())
            + " (each answers what it is sure of and passes the rest on; escalated queries go to the LLM)."
        )
    return out


def _most_common(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))


def _tick(name: object) -> str:
    """A category as a chart's tick label shows it: as written. Matplotlib reads text between two `$` as math
    (a stored label `cost_$\\x$` failed the whole report, `$x$` showed as an italic x): `\\$` is a literal `$`."""
    return ("(none)" if name is None else str(name)).replace("$", r"\$")


def _bar_chart(data: Sequence[tuple[object, float]], extra: Sequence[tuple[str, float]] = (), ylabel: str = ""):
    """A matplotlib Figure with one bar per pair of `data` (blue) then of `extra` (red, the baseline), each at its
    own place: two pairs with one name (a pool named `total` beside the total) are two bars, not one over the other
    (matplotlib puts bars of one category name at one place)."""
    from matplotlib.figure import Figure  # no pyplot: the host program's backend stays as it is

    fig = Figure(figsize=(5.5, 3))
    ax = fig.subplots()
    ax.bar(range(len(data)), [v for _, v in data], color="#4878a8", label="taskrouter")
    if extra:
        places = range(len(data), len(data) + len(extra))
        ax.bar(places, [v for _, v in extra], color="#c44e52", alpha=0.6, label="baseline")
        ax.legend()
    ax.set_xticks(range(len(data) + len(extra)), [_tick(k) for k, _ in [*data, *extra]])
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def render_html(m: dict[str, Any], *, title: str = "taskrouter report", generated: datetime | None = None) -> str:
    """A self-contained page: every plot is an inline PNG, no external resources.

    A chart with nothing to show (no requests, no fallbacks, one period of time) is a sentence instead."""
    from matplotlib.figure import Figure  # no pyplot: the host program's backend stays as it is

    esc = html.escape
    notes = readings(m)
    sections: list[tuple[str, str, str]] = []  # (key, heading, the chart's <img> or a sentence in its place)

    def image(fig, heading: str) -> str:
        return f'<img alt="{esc(heading)}" src="data:image/png;base64,{_png(fig)}">'

    def bar(
        key: str,
        heading: str,
        data: Sequence[tuple[object, float]],
        ylabel: str,
        empty: str | None,
        extra: Sequence[tuple[str, float]] = (),
    ):
        """A bar chart of `data`; with nothing to show, the sentence `empty` (None: the reading says it)."""
        if not any(v for _, v in data) and not any(v for _, v in extra):
            sections.append((key, heading, "" if empty is None else f'<p class="empty">{esc(empty)}</p>'))
            return
        sections.append((key, heading, image(_bar_chart(data, extra, ylabel), heading)))

    nothing = "No requests in this period."
    bar("label_distribution", "Traffic by label", list(m["label_distribution"].items()), "share of requests", nothing)
    bar(
        "pool_distribution",
        "Traffic by served pool",
        list(m["pool_distribution"].items()),
        "share of requests",
        "No request succeeded in this period." if m["requests"] else nothing,
    )
    bar(
        "fallback_rate",
        "Fallback rate by requested pool",
        list(m["fallback_rate"].items()),
        "share falling back",
        None,  # the reading: "No fallbacks in this period: ..."
    )
    bar(
        "cost_usd",
        f"Cost by pool vs everything on {m['baseline_pool']!r}",
        [*m["cost_usd"].items(), ("total", m["total_cost_usd"])],  # a pool may be named `total` too: its own bar
        "USD",
        "No cost recorded in this period." if m["requests"] else nothing,
        [(f"all {m['baseline_pool']}", m["baseline_cost_usd"])] if m["baseline_cost_usd"] is not None else (),
    )
    over_time = m["escalation_over_time"]
    if len(over_time) > 1:
        fig = Figure(figsize=(5.5, 3))
        ax = fig.subplots()
        ax.plot(list(over_time), list(over_time.values()), marker="o")
        ax.set_ylabel("escalation rate")
        ax.set_ylim(0, 1.1 * max(0.05, *over_time.values()))  # a flat 0 % line sits on the axis
        ax.tick_params(axis="x", rotation=30)
        ax.grid(alpha=0.3)
        trend = image(fig, "Escalation rate over time")
    elif over_time:  # one dot is no trend: say what it would have shown
        ((period, rate),) = over_time.items()
        n = m["requests"]
        trend = (
            f'<p class="empty">{n} request{"s" if n != 1 else ""}, all in one period ({esc(period)}): {rate:.0%} '
            "escalated. A trend needs at least two periods (hours; days when the report spans more than two).</p>"
        )
    else:
        trend = f'<p class="empty">{nothing}</p>'
    sections.append(("escalation_rate", "Escalation rate over time", trend))
    bar("stage_coverage", "Which stage decided", list(m["stage_coverage"].items()), "share of requests", nothing)
    no_held = "No query was held back by the escalation budget." if m["requests"] else nothing
    held = "" if m.get("held_back_rate") else f'<p class="empty">{no_held}</p>'  # else the reading says how many
    sections.append(("held_back_rate", "Held back by the escalation budget", held))
    errors = m.get("error_classes") or {}
    error_rows = "".join(f"<tr><td>{esc(str(name))}</td><td>{count}</td></tr>" for name, count in _most_common(errors))
    no_errors = "No request met an error in this period." if m["requests"] else nothing
    error_table = f"<table><tr><th>error class</th><th>requests</th></tr>{error_rows}</table>"
    sections.append(
        ("error_classes", "Errors by class", error_table if error_rows else f'<p class="empty">{no_errors}</p>')
    )

    body_html = "".join(
        f'<section id="{key}"><h2>{esc(heading)}</h2>{body}<p class="reading">{esc(notes.get(key, ""))}</p></section>'
        for key, heading, body in sections
    )

    def row(s: dict) -> str:
        conf = "" if s["confidence"] is None else f"{s['confidence']:.2f}"
        return (
            f"<tr><td>{esc(str(s['text'])[:200])}</td><td>{esc(str(s['label']))}</td><td>{conf}</td>"
            f"<td>{esc(str(s['served_pool']))}</td></tr>"
        )

    sample = "".join(row(s) for s in m["escalated_sample"])
    sample_html = (
        f"<table><tr><th>query (redacted)</th><th>label</th><th>confidence</th><th>served</th></tr>{sample}</table>"
        if sample
        else "<p>No query text stored (set <code>taskrouter.telemetry.store_text: true</code> to keep a "
        "redacted sample).</p>"
    )
    when = (generated or datetime.now()).strftime("%Y-%m-%d %H:%M")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}
section{{margin:1.5em 0}}img{{max-width:100%}}.reading{{background:#f4f4f4;padding:.6em;border-left:4px solid #4878a8}}
.empty{{color:#555;font-style:italic}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .5em;text-align:left}}</style></head>
<body><h1>{esc(title)}</h1>
<p>{m["requests"]} requests ({m["failed"]} failed) · escalation rate {m["escalation_rate"]:.1%} ·
cost ${m["total_cost_usd"]:.4f}{"" if m["baseline_cost_usd"] is None else f" vs ${m['baseline_cost_usd']:.4f} baseline"}
· generated {when}</p>
{body_html}
<section id="escalated_sample"><h2>Sample of escalated queries</h2>{sample_html}</section>
</body></html>
"""
