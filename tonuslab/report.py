"""Self-contained HTML reports: one file, every figure embedded as a base64 PNG (matplotlib Agg).

Per session: the spasticity profile, angle and velocity, raw and conditioned EMG with the detected
onset of every stretch, DSRT against velocity with the fit, interval and range band, the Tardieu
summary, overlaid H/M sweeps, recruitment curves with fits, the depression curve and the quality
flags. With several sessions: the comparison over time (:mod:`tonuslab.compare`) and its plot.

Every figure is an ``<img class="figure" data-figure="NAME">``; the report's tests render the file
in headless Chromium and check each image decoded (``naturalWidth > 0``).
"""

from __future__ import annotations

import base64
import html
import io
import math
import pathlib

import numpy as np

from tonuslab import __version__
from tonuslab.analysis import STIMULUS_COLUMNS, STRETCH_COLUMNS
from tonuslab.profile import build_profile

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{border-bottom:2px solid #336;padding-bottom:.2em}h2{color:#336;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
td,th{border:1px solid #ccc;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#eef}img.figure{max-width:100%;display:block;margin:.6em 0;border:1px solid #ddd}
.flag{color:#a40}.note{color:#555;font-size:.9em}.ok{color:#060}
.beyond{background:#fde9c8;font-weight:bold}
"""


# ---------------------------------------------------------------------------------- helpers
#: Columns of the burst table (EMG-only recordings) and of the movement table (angle only).
BURST_COLUMNS = (
    "channel_name", "burst", "onset_s", "offset_s", "duration_s", "peak_uv", "iemg_uv_s",
    "mean_frequency_hz", "median_frequency_hz", "touches_gap",
)  # fmt: skip
MOVEMENT_COLUMNS = (
    "movement", "start_s", "end_s", "duration_s", "direction", "range_deg", "peak_velocity_deg_s",
)  # fmt: skip


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(name: str, fig, alt: str) -> str:
    return (
        f'<img class="figure" data-figure="{html.escape(name)}" alt="{html.escape(alt)}" '
        f'src="data:image/png;base64,{_png(fig)}">'
    )


def _e(v) -> str:
    return html.escape(str(v))


def _f(v, digits=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        return f"{v:.{digits}g}" if abs(v) < 100 else f"{v:.1f}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_f(x, digits) for x in v) + "]"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_f(x, digits)}" for k, x in v.items()) or "-"
    return _e(v)


def _nan(v) -> float:
    return float("nan") if v is None else float(v)


# ---------------------------------------------------------------------------------- sections
def profile_html(summary: dict) -> str:
    """The spasticity profile as an HTML table with uncertainty, references, SRD and sources."""
    p = build_profile(summary)
    rows = [
        "<tr><th>component</th><th>value</th><th>uncertainty</th><th>smallest real difference"
        "</th><th>reference values</th><th>validated</th><th>notes and sources</th></tr>"
    ]
    for c in p.components:
        value = "not measured" if c.value is None else f"{_f(c.value)} {_e(c.unit)}"
        srd = "none published" if c.srd is None else f"{c.srd:.1f} {_e(c.unit)}"
        notes = ". ".join(x.rstrip(".") for x in (c.interpretation, c.note) if x)
        rows.append(
            f"<tr><td>{_e(c.label)}</td><td>{value}</td><td>{_e(c.uncertainty or '-')}</td>"
            f"<td>{srd}</td><td>{_e(c.reference)}</td><td>{'yes' if c.validated else 'no'}</td>"
            f"<td>{_e(notes)}<br><span class='note'>{'; '.join(map(_e, c.sources))}</span></td>"
            "</tr>"
        )
    caveats = "".join(f"<li>{_e(t)}</li>" for t in p.not_validated)
    return (
        f"<table class='profile'>{''.join(rows)}</table>"
        f"<p><b>Composite index:</b> none (no validated composite exists).</p>"
        f"<p><b>Not validated:</b></p><ul>{caveats}</ul>"
    )


def fig_profile(summary: dict):
    """TSRT with its interval against the joint range and the SRD."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 1.9))
    rng = summary.get("range_deg") or summary.get("passive_range_deg")
    if rng:
        ax.axvspan(rng[0], rng[1], color="#cde", label="joint range")
    t = summary.get("tsrt_deg")
    ci = summary.get("tsrt_ci_deg") or [None, None]
    if t is not None:
        lo, hi = _nan(ci[0]), _nan(ci[1])
        xerr = None if math.isnan(lo) else [[t - lo], [hi - t]]
        ax.errorbar([t], [0], xerr=xerr, fmt="o", color="#a20", capsize=5, label="TSRT, 95% CI")
        srd = build_profile(summary).component("tsrt_deg").srd
        if srd:
            ax.plot([t - srd, t + srd], [0.3, 0.3], "|-", color="#555", label="+/- SRD")
    else:
        ax.text(0.5, 0.5, "TSRT not measured", transform=ax.transAxes, ha="center")
    ax.set_yticks([])
    ax.set_ylim(-1, 1)
    ax.set_xlabel("angle (deg, increasing as the muscle lengthens)")
    ax.legend(loc="upper right", fontsize=7, ncol=3)
    ax.set_title("TSRT against the joint range")
    return fig


def fig_angle_velocity(session, summary: dict):
    from dsp.kinematics import angle_kinematics

    plt = _plt()
    angle = session.angle_deg
    t = session.angle_time_s
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 4), sharex=True)
    a1.plot(t, angle, lw=0.8, color="#224")
    a1.set_ylabel("angle (deg)")
    vel = angle_kinematics(angle, session.angle_rate_hz).velocity_deg_s  # NaN across gaps
    a2.plot(t, vel, lw=0.8, color="#262")
    a2.set_ylabel("velocity (deg/s)")
    a2.set_xlabel("time (s)")
    for s in summary.get("stretches") or []:
        if s.get("start_s") is not None:
            a1.axvline(s["start_s"] + session.t0_s, color="#aaa", lw=0.5)
        if s.get("onset_s") is not None:
            a1.plot(s["onset_s"] + session.t0_s, _nan(s.get("dsrt_deg")), "v", color="#a20", ms=5)
    a1.set_title("Joint angle (onsets marked) and angular velocity")
    return fig


def fig_stretch_emg(session, summary: dict, channel: int, max_panels: int = 30):
    """Raw and conditioned EMG around each stretch, with the detected onset."""
    from dsp.envelopes import linear_envelope
    from dsp.filters import bandpass

    plt = _plt()
    stretches = (summary.get("stretches") or [])[:max_panels]
    n = max(1, len(stretches))
    cols = 3 if n > 2 else n
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.3 * rows), squeeze=False)
    fs = session.emg_rate_hz
    raw_all = session.emg_uv[:, channel]
    for ax, s in zip(axes.flat, stretches, strict=False):
        a = max(0, int((_nan(s.get("start_s")) - 0.3) * fs))
        b = min(raw_all.size, int((_nan(s.get("end_s")) + 0.4) * fs))
        if not b > a:
            continue
        raw = raw_all[a:b]
        clean = np.nan_to_num(raw)
        cond = bandpass(clean, fs, 20.0, min(450.0, 0.45 * fs))
        env = linear_envelope(cond, fs, 50.0)
        tt = np.arange(a, b) / fs
        ax.plot(tt, raw, color="#bbb", lw=0.5, label="raw")
        ax.plot(tt, env, color="#048", lw=1.0, label="envelope (20-450 Hz, rect., 50 Hz)")
        if s.get("onset_s") is not None:
            ax.axvline(s["onset_s"], color="#a20", lw=1.2, label="onset")
        ax.set_title(
            f"#{s.get('index')} {_f(s.get('peak_velocity_deg_s'))} deg/s"
            + ("" if s.get("reflex") else " (no reflex)"),
            fontsize=8,
        )
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(stretches) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, loc="upper left")
    fig.supxlabel("time (s)", fontsize=8)
    fig.supylabel("EMG (uV)", fontsize=8)
    fig.tight_layout()
    return fig


def fig_dsrt(summary: dict):
    """DSRT against onset velocity with the fit, its interval and the range band."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    rng = summary.get("range_deg") or summary.get("passive_range_deg")
    if rng:
        ax.axhspan(rng[0], rng[1], color="#e6eef6", label="joint range")
    used, other, censored = [], [], []
    for s in summary.get("stretches") or []:
        v, d = s.get("onset_velocity_deg_s"), s.get("dsrt_deg")
        if v is not None and d is not None:
            (used if s.get("used_in_fit") else other).append((v, d))
        elif s.get("reflex_absent_up_to_deg") is not None:
            censored.append((_nan(s.get("peak_velocity_deg_s")), s["reflex_absent_up_to_deg"]))
    for pts, style, label in (
        (used, dict(color="#048", marker="o", ls=""), "DSRT (in fit)"),
        (other, dict(color="#999", marker="x", ls=""), "DSRT (excluded)"),
        (censored, dict(color="#a60", marker="^", ls="", mfc="none"), "no reflex up to"),
    ):
        if pts:
            ax.plot(*zip(*pts, strict=True), label=label, **style)
    lam, mu = summary.get("tsrt_deg"), summary.get("mu_s")
    vmax = max([p[0] for p in used + other + censored] or [100.0])
    w = np.linspace(0, vmax * 1.05, 100)
    if lam is not None and mu is not None:
        ax.plot(w, lam - mu * w, color="#a20", label=f"fit: DSRT = {lam:.1f} - {mu:.3f} w")
        ci, mci = summary.get("tsrt_ci_deg"), summary.get("mu_ci_s")
        if ci and mci and None not in ci and None not in mci:
            corners = np.array([c - m * w for c in ci for m in mci])
            ax.fill_between(
                w,
                corners.min(0),
                corners.max(0),
                color="#a20",
                alpha=0.15,
                label="95% interval (lambda, mu)",
            )
            ax.errorbar(
                [0],
                [lam],
                yerr=[[lam - ci[0]], [ci[1] - lam]],
                color="#a20",
                capsize=5,
                fmt="s",
                label="TSRT (w = 0)",
            )
    ax.set_xlabel("velocity at onset w (deg/s)")
    ax.set_ylabel("angle (deg)")
    ax.set_title("Dynamic stretch reflex threshold against velocity")
    ax.legend(fontsize=7)
    return fig


def tardieu_html(summary: dict) -> str:
    """Tardieu angles with 95% intervals, the grade, the EMG gain and the fastest stretches."""
    rows = [
        ("R1 (catch angle, fast stretch)", "tardieu_r1_deg", "tardieu_r1_ci_deg", "deg"),
        ("R2 (passive range, slow stretch)", "tardieu_r2_deg", "tardieu_r2_ci_deg", "deg"),
        (
            "R2 - R1 (dynamic component)",
            "tardieu_r2_minus_r1_deg",
            "tardieu_r2_minus_r1_ci_deg",
            "deg",
        ),
        ("quality grade X (instrumented, 0-4)", "tardieu_grade", None, ""),
        ("EMG gain (fast / slow RMS-EMG)", "emg_gain", "emg_gain_ci", ""),
    ]
    body = "<tr><th>measure</th><th>value</th><th>95% interval</th></tr>" + "".join(
        f"<tr><td>{a}</td><td>{_f(summary.get(k))} {u}</td>"
        f"<td>{_f(summary.get(ci)) if ci and summary.get(ci) else '-'}</td></tr>"
        for a, k, ci, u in rows
    )
    if summary.get("stretch_ci_method"):
        body += f"<tr><td colspan='3'>intervals: {_e(summary['stretch_ci_method'])}</td></tr>"
    fast = sorted(
        (s for s in summary.get("stretches") or [] if s.get("peak_velocity_deg_s") is not None),
        key=lambda s: -s["peak_velocity_deg_s"],
    )[:5]
    detail = "".join(
        f"<tr><td>{s.get('index')}</td><td>{_f(s.get('peak_velocity_deg_s'))}</td>"
        f"<td>{_f(s.get('catch_angle_deg'))}</td><td>{_f(s.get('catch_detected'))}</td>"
        f"<td>{_f(s.get('release'))}</td><td>{_f(s.get('clonus_duration_s'))}</td></tr>"
        for s in fast
    )
    return (
        f"<table>{body}</table><p>Fastest stretches:</p><table><tr><th>stretch</th>"
        "<th>peak velocity (deg/s)</th><th>catch angle (deg)</th><th>catch</th><th>release</th>"
        f"<th>clonus (s)</th></tr>{detail}</table>"
    )


def hreflex_html(summary: dict) -> str:
    """Headline H-reflex numbers with intervals, and the test intensity with M stability."""
    h = summary.get("hreflex") or {}
    rows = [
        ("Mmax (uV)", h.get("mmax_uv"), h.get("mmax_uv_ci")),
        ("Hmax (uV)", h.get("hmax_uv"), h.get("hmax_uv_ci")),
        ("Hmax/Mmax", h.get("hmax_mmax"), h.get("hmax_mmax_ci")),
        ("M latency (ms)", h.get("m_latency_ms"), None),
        ("H latency (ms)", h.get("h_latency_ms"), None),
    ]
    body = "".join(
        f"<tr><td>{a}</td><td>{_f(v)}</td><td>{'-' if not ci else _f(ci)}</td></tr>"
        for a, v, ci in rows
    )
    t = h.get("test_intensity") or {}
    test = ""
    if t:
        test = (
            f"<p>Test intensity for follow-up (M at {_f(t.get('m_fraction'))} of Mmax): "
            f"{_f(t.get('intensity_ma'))} mA, on the rising H limb: "
            f"{_f(t.get('on_rising_h_limb'))}; trials there: {_f(t.get('n_trials'))} at "
            f"{_f(t.get('trials_levels_ma'))} mA (up to {_f(t.get('intensity_distance_ma'))} mA "
            f"from it; {_e(t.get('trials_rule') or '-')}), "
            f"M/Mmax {_f(t.get('m_fraction_mean'))} +/- {_f(t.get('m_fraction_sd'))}, "
            f"fraction inside the QC band {_f(t.get('qc_band'))}: "
            f"{_f(t.get('fraction_in_qc_band'))}.</p>"
        )
    return (
        f"<table><tr><th>measure</th><th>value</th><th>95% interval</th></tr>{body}</table>{test}"
    )


def fig_sweeps(session, summary: dict, channel: int, window_ms=(-5.0, 60.0)):
    """Overlaid sweeps around every stimulus, coloured by intensity."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    fs = session.emg_rate_hz
    emg = session.emg_uv[:, channel]
    stims = session.stimuli
    inten = np.array([s.intensity_ma for s in stims], dtype=float)
    lo, hi = np.nanmin(inten), np.nanmax(inten)
    cmap = plt.get_cmap("viridis")
    a, b = int(window_ms[0] * fs / 1000), int(window_ms[1] * fs / 1000)
    tt = np.arange(a, b) / fs * 1000.0
    peak = 0.0
    for s, mA in zip(stims, inten, strict=True):
        i0, i1 = s.emg_sample_index + a, s.emg_sample_index + b
        if i0 < 0 or i1 > emg.size:
            continue
        c = cmap(0.0 if hi <= lo else (mA - lo) / (hi - lo))
        sweep = emg[i0:i1]
        ax.plot(tt, sweep, color=c, lw=0.6, alpha=0.8)
        after = sweep[tt > 4.0]  # scale to the waves, not to the stimulus artifact
        if after.size and np.isfinite(after).any():
            peak = max(peak, float(np.nanmax(np.abs(after))))
    if peak > 0:
        ax.set_ylim(-1.15 * peak, 1.15 * peak)
    hr = summary.get("hreflex") or {}
    for key, name, col in (("m_window", "M", "#c60"), ("h_window", "H", "#06c")):
        wdw = hr.get(key) or {}
        start, end = wdw.get("start_ms"), wdw.get("end_ms")
        if start is not None and end is not None:
            ax.axvspan(start, end, color=col, alpha=0.12, label=f"{name} window")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(lo, hi))
    fig.colorbar(sm, ax=ax, label="intensity (mA)")
    ax.set_xlabel("time after stimulus (ms)")
    ax.set_ylabel("EMG (uV)")
    ax.set_title(f"Overlaid sweeps ({len(stims)} stimuli; artifact clipped)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return fig


def fig_recruitment(summary: dict):
    """M and H peak-to-peak against intensity with the fitted curves."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    rows = [r for r in summary.get("stimuli") or [] if r.get("intensity_ma") is not None]
    for key, name, col in (("m_p2p_uv", "M", "#c60"), ("h_p2p_uv", "H", "#06c")):
        pts = [
            (r["intensity_ma"], r[key], r.get("included", True))
            for r in rows
            if r.get(key) is not None and (r.get("pulse_index") or 0) == 0
        ]
        inc = [(x, y) for x, y, ok in pts if ok]
        exc = [(x, y) for x, y, ok in pts if not ok]
        if inc:
            ax.plot(*zip(*inc, strict=True), "o", color=col, ms=4, label=f"{name} wave")
        if exc:
            ax.plot(
                *zip(*exc, strict=True), "x", color=col, ms=4, alpha=0.5, label=f"{name} (excluded)"
            )
    fits = (summary.get("hreflex") or {}).get("recruitment") or {}
    xs = [r["intensity_ma"] for r in rows]
    if xs:
        grid = np.linspace(min(xs), max(xs), 300)
        from dsp.hreflex import h_model, m_model

        for key, model, col in (("m", m_model, "#c60"), ("h", h_model, "#06c")):
            fit = fits.get(key) or {}
            params = fit.get("params") or {}
            p = list(params.values())
            if p and None not in p:
                ax.plot(
                    grid,
                    model(np.array(p, dtype=float), grid),
                    color=col,
                    lw=1.5,
                    label=f"{key.upper()} fit (r2 {_f(fit.get('r2'))})",
                )
    ax.set_xlabel("stimulus intensity (mA)")
    ax.set_ylabel("peak-to-peak amplitude (uV)")
    ax.set_title(f"Recruitment curves; Hmax/Mmax = {_f(summary.get('hmax_mmax'))}")
    ax.legend(fontsize=7)
    return fig


def fig_depression(summary: dict):
    """H(rate) / H(0.1 Hz) of the session beside the chronic-stroke reference curve.

    The reference: the domain guide's chronic-stroke H2/H1 (0.93, 0.86, 0.84, 0.74 at 0.1, 0.2,
    0.3, 1 Hz) divided by its 0.1 Hz value, the scale of this plot
    (:data:`dsp.hreflex.presets.STROKE_H2_H1_PER_0P1HZ`).
    """
    from dsp.hreflex.presets import STROKE_H2_H1_PER_0P1HZ

    stroke = {float(k): v for k, v in STROKE_H2_H1_PER_0P1HZ.items()}
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    withheld = summary.get("depression_not_interpretable")
    dep = {} if withheld else summary.get("rate_dependent_depression") or {}
    pts = sorted((float(k), v) for k, v in dep.items() if v is not None)
    if pts and all(abs(f - 0.1) > 1e-9 for f, _ in pts):
        pts = [(0.1, 1.0), *pts]  # ratios are normalised to the 0.1 Hz baseline
    if pts:
        ax.plot(*zip(*pts, strict=True), "o-", color="#06c", label="this session")
    else:
        text = (
            "time-compressed session:\ndepression not interpretable"
            if withheld
            else "no depression block in this session"
        )
        ax.text(0.5, 0.6, text, ha="center", transform=ax.transAxes)
    ax.plot(
        list(stroke),
        list(stroke.values()),
        "s--",
        color="#999",
        label="chronic stroke H2/H1, per 0.1 Hz value (reference)",
    )
    ax.set_xscale("log")
    ax.axhline(1.0, color="#ccc", lw=0.8)
    ax.set_xlabel("stimulation rate (Hz)")
    ax.set_ylabel("H / H at 0.1 Hz")
    ax.set_title("Rate-dependent depression")
    ax.legend(fontsize=7)
    return fig


def fig_comparison(comparison: dict):
    """Each metric over time against baseline, SRD band where one exists."""
    plt = _plt()
    metrics = comparison["metrics"]
    times = [s["time_h"] for s in comparison["sessions"]]
    n = max(1, len(metrics))
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.1 * n), sharex=True, squeeze=False)
    for ax, (_key, m) in zip(axes[:, 0], metrics.items(), strict=False):
        vals = [_nan(v) for v in m["values"]]
        ax.plot(times, vals, "o-", color="#048")
        base = vals[0]
        if m["srd"] is not None and not math.isnan(base):
            ax.axhspan(base - m["srd"], base + m["srd"], color="#ddd", label="baseline +/- SRD")
            for t, v, b in zip(times, vals, m["beyond_srd"], strict=True):
                if b:
                    ax.plot(t, v, "o", color="#c30", ms=9, mfc="none")
            ax.legend(fontsize=7, loc="best")
        ax.set_ylabel(f"{m['label']}\n({m['unit']})" if m["unit"] else m["label"], fontsize=8)
    axes[-1, 0].set_xlabel("hours after baseline")
    r = comparison["responder"]
    fig.suptitle(f"Over time; responder ({r['metric']}): {r['responder']}", fontsize=10)
    fig.tight_layout()
    return fig


def comparison_html(comparison: dict) -> str:
    times = [s["time_h"] for s in comparison["sessions"]]
    head = "".join(f"<th>{t:g} h</th>" for t in times)
    rows = []
    for m in comparison["metrics"].values():
        cells = []
        for i, v in enumerate(m["values"]):
            change = m["changes"][i]
            beyond = m["beyond_srd"][i]
            text = _f(v) + ("" if i == 0 or change is None else f" ({change:+.3g})")
            cells.append(f"<td class='{'beyond' if beyond else ''}'>{text}</td>")
        srd = "-" if m["srd"] is None else f"{m['srd']:.3g}"
        rows.append(f"<tr><td>{_e(m['label'])}</td>{''.join(cells)}<td>{srd}</td></tr>")
    r = comparison["responder"]
    verdict = {True: "responder", False: "not a responder", None: "no decision"}[r["responder"]]
    files = "".join(f"<li>{s['time_h']:g} h: {_e(s['file'])}</li>" for s in comparison["sessions"])
    return (
        f"<table><tr><th>metric</th>{head}<th>SRD</th></tr>{''.join(rows)}</table>"
        "<p class='note'>Highlighted: change from baseline beyond the smallest real difference."
        "</p>"
        f"<p><b>Responder criterion</b> ({_e(r['metric'])} {_e(r['direction'])} beyond the SRD "
        f"for at least {r['min_duration_h']:g} h): <b>{verdict}</b>. {_e(r['reason'])}</p>"
        f"<ul>{files}</ul>"
        + "".join(f"<p class='flag'>Warning: {_e(w)}</p>" for w in comparison.get("warnings") or [])
    )


def _cell(v) -> str:
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return _e("; ".join(v)) or "-"
    return _f(v)


def rows_html(rows: list[dict], columns: tuple[str, ...], title: str) -> str:
    """A collapsible table of the chosen columns (all columns are in the JSON summary)."""
    if not rows:
        return ""
    cols = [c for c in columns if any(c in r for r in rows)]
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return (
        f"<details><summary>{_e(title)} ({len(rows)} rows)</summary>"
        f"<table><tr>{head}</tr>{body}</table></details>"
    )


# ---------------------------------------------------------------------------------- assembly
def session_section(session, summary: dict, title: str) -> str:
    """HTML of one session: profile, figures, tables and quality flags."""
    channel = int((summary.get("parameters") or {}).get("channel") or 0)
    parts = [f"<h2>{_e(title)}</h2>"]
    meta = dict(session.metadata)
    if summary.get("muscle"):  # the analysed muscle (a run may analyse another channel)
        meta["muscle"] = summary["muscle"]
    meta["EMG channel"] = summary.get("emg_channel")
    meta["results run"] = summary.get("run")
    parts.append(
        "<p>"
        + " &middot; ".join(
            f"{k}: {_e(meta[k])}"
            for k in (
                "subject_id",
                "muscle",
                "EMG channel",
                "side",
                "joint",
                "protocol",
                "session_label",
                "results run",
            )
            if meta.get(k)
        )
        + f" &middot; analyses: {_e(', '.join(summary.get('analyses') or []) or 'none')}"
        + f" &middot; input SHA-256 {_e((summary.get('input_sha256') or '-')[:16])}...</p>"
    )
    parts.append("<h3>Spasticity profile</h3>" + profile_html(summary))
    if "stretch_reflex" in (summary.get("analyses") or []):
        parts.append(_img("profile", fig_profile(summary), "TSRT against the joint range"))
        parts.append("<h3>Angle and velocity</h3>")
        parts.append(_img("angle_velocity", fig_angle_velocity(session, summary), "angle"))
        parts.append("<h3>EMG per stretch: raw, conditioned, detected onset</h3>")
        parts.append(_img("stretch_emg", fig_stretch_emg(session, summary, channel), "EMG"))
        parts.append("<h3>DSRT against velocity</h3>")
        parts.append(_img("dsrt", fig_dsrt(summary), "DSRT against velocity with fit"))
        parts.append(
            rows_html(summary.get("stretches") or [], STRETCH_COLUMNS, "Per-stretch table")
        )
        parts.append("<h3>Tardieu summary</h3>" + tardieu_html(summary))
    if "hreflex" in (summary.get("analyses") or []):
        parts.append("<h3>H-reflex</h3>" + hreflex_html(summary))
        parts.append("<h3>Overlaid H/M sweeps</h3>")
        parts.append(_img("sweeps", fig_sweeps(session, summary, channel), "sweeps"))
        parts.append("<h3>Recruitment curves</h3>")
        parts.append(_img("recruitment", fig_recruitment(summary), "recruitment curves"))
        parts.append("<h3>Rate-dependent depression</h3>")
        parts.append(_img("depression", fig_depression(summary), "depression curve"))
        parts.append(
            rows_html(summary.get("stimuli") or [], STIMULUS_COLUMNS, "Per-stimulus table")
        )
    if "emg_bursts" in (summary.get("analyses") or []):
        parts.append(
            rows_html(summary.get("bursts") or [], BURST_COLUMNS, "EMG bursts per channel")
        )
    if "movements" in (summary.get("analyses") or []):
        parts.append(rows_html(summary.get("movements") or [], MOVEMENT_COLUMNS, "Joint movements"))
    flags = summary.get("quality_flags") or []
    parts.append(
        "<h3>Quality flags</h3>"
        + (
            "<ul>" + "".join(f"<li class='flag'>{_e(f)}</li>" for f in flags) + "</ul>"
            if flags
            else "<p class='ok'>none</p>"
        )
    )
    return "\n".join(parts)


def write_report(
    files,
    out,
    *,
    comparison: dict | None = None,
    summaries: list[dict] | None = None,
    run: str = "default",
    compare_sessions: bool = True,
) -> pathlib.Path:
    """Write one self-contained HTML report for one or more session files.

    Parameters
    ----------
    files : list of path-like
        Session files. Each is reported with its stored results run ``run`` or, when the file
        has none, a fresh analysis (not written to the file).
    out : path-like
        The HTML file to write.
    comparison : dict, optional
        Output of :func:`tonuslab.compare.compare`; computed when several files are given.
    summaries : list of dict, optional
        Summaries matching ``files`` (skips reading or re-analysing).
    compare_sessions : bool
        With several files and no ``comparison``: compare them over time (one subject and
        muscle). False reports unrelated sessions side by side.
    """
    from tonuslab.analysis import analyze_session
    from tonuslab.results import read_results
    from tonuslab.session import open_session

    files = [pathlib.Path(f) for f in files]
    out = pathlib.Path(out)
    sections, loaded = [], []
    for i, path in enumerate(files):
        with open_session(path) as session:
            summary = summaries[i] if summaries else None
            if summary is None:
                summary = read_results(session.reader.file).get(run)
            if summary is None:
                summary = analyze_session(session)
                summary["file"] = str(path)
            loaded.append(summary)
            sections.append(session_section(session, summary, f"Session {path.name}"))
    if comparison is None and compare_sessions and len(files) > 1:
        from tonuslab.compare import compare

        comparison = compare(loaded)
    body = []
    if comparison is not None:
        body.append("<h2>Comparison over time</h2>" + comparison_html(comparison))
        body.append(_img("comparison", fig_comparison(comparison), "metrics over time"))
    body.extend(sections)
    doc = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>tonuslab report</title><style>{_CSS}</style></head><body>"
        f"<h1>tonuslab report</h1><p class='note'>tonuslab {_e(__version__)}; "
        f"{len(files)} session(s). Numbers come with their uncertainty and reference values; "
        "nothing here is mapped to Ashworth scores.</p>" + "\n".join(body) + "</body></html>"
    )
    from tonuslab.output import atomic_output

    with atomic_output(out) as tmp:
        tmp.write_text(doc, encoding="utf-8")
    return out
