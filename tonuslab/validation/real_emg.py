"""Burst detection on real EMG against hand marks (``tonuslab validate real-emg``).

The recordings and the marks are described in :mod:`tonuslab.validation.real_emg_data`. Each
marked channel is prepared the same way for every detector:

1. split at missing samples into runs of finite samples; runs shorter than 2 s are left out;
2. EMGFlow only: a 50 Hz notch comb (50 to 450 Hz, Q 30, zero-phase, :func:`dsp.filters.notch`)
   on each run, then 1 s cut from both ends of the run (the notches' settling time);
3. each detector runs on each piece with its **default parameters**: tonuslab's three
   (:mod:`dsp.onsets`), BioSPPy's ``signals.emg.emg`` and NeuroKit2's ``emg_process`` (both
   optional: ``pip install tonuslab[validation]``).

Scoring, per channel: a detected onset belongs to the marked burst ``[start, end)`` when it lies
in ``[start - 0.5 s, end)``; the first onset that belongs to a burst gives its onset error
(detected - marked); more onsets in the same burst are fragments. An onset that belongs to no
burst is ignored when it lies in an ``unsure`` interval, else it is a false alarm. The count is
the onsets that were not ignored; it is *exact* when it equals the number of marked bursts.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from tonuslab.validation import real_emg_data as data

#: Shortest run of finite samples analysed (s).
MIN_RUN_S = 2.0
#: Cut from both ends of a notched run (s): the comb's time constant is Q / (pi f0) = 0.19 s at
#: 50 Hz, Q 30, so after 1 s its start-up transient is below 1 % of the mains amplitude.
NOTCH_SETTLE_S = 1.0
#: A detected onset up to this long before a marked start belongs to that burst (s).
EARLY_S = 0.5
#: The budget on real voluntary bursts (issue 17): exact counts, median |onset error| < 50 ms.
BUDGET_MEDIAN_ABS_MS = 50.0

OURS = ("threshold", "tkeo", "changepoint")
OTHERS = ("biosppy", "neurokit2")


def pieces(ch: data.Channel) -> list[tuple[int, np.ndarray]]:
    """``(first sample, samples)`` of each analysed piece of a channel (steps 1-2 above)."""
    from dsp.filters import notch

    x = ch.emg_uv
    finite = np.isfinite(x)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(np.int8), [0]])))
    out = []
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if b - a < MIN_RUN_S * ch.rate_hz:
            continue
        y = x[a:b]
        if ch.line_hz is not None:
            harmonics = int(0.45 * ch.rate_hz // ch.line_hz)
            y = notch(y, ch.rate_hz, ch.line_hz, harmonics=harmonics, quality=30.0)
            cut = round(NOTCH_SETTLE_S * ch.rate_hz)
            a, y = a + cut, y[cut : y.size - cut]
        out.append((int(a), np.ascontiguousarray(y)))
    return out


def _detect(method: str, y: np.ndarray, rate_hz: float) -> np.ndarray:
    """Onset sample indices of one detector on one piece (defaults)."""
    if method in OURS:
        from dsp.onsets import detect_onsets

        return np.asarray(detect_onsets(y, rate_hz, method).onsets)
    if method == "biosppy":
        from biosppy.signals import emg

        return np.asarray(emg.emg(signal=y, sampling_rate=rate_hz, show=False)["onsets"], int)
    if method == "neurokit2":
        import neurokit2 as nk

        _, info = nk.emg_process(y, sampling_rate=round(rate_hz))
        return np.asarray(info["EMG_Onsets"], int)
    raise ValueError(f"unknown method {method!r}")


def available(method: str) -> str | None:
    """None if ``method`` can run here, else why not."""
    module = {"biosppy": "biosppy.signals.emg", "neurokit2": "neurokit2"}.get(method)
    if module is None:
        return None
    try:
        __import__(module)
    except ImportError as exc:
        return f"not installed ({exc.name}); pip install tonuslab[validation]"
    return None


def score(onsets_s: np.ndarray, bursts: list, unsure: list) -> dict:
    """Hits, fragments, false alarms and onset errors of ``onsets_s`` against the marks."""
    errors: list[float | None] = [None] * len(bursts)
    per_burst = [0] * len(bursts)
    false = 0
    for t in np.sort(onsets_s):
        k = next((i for i, (a, b) in enumerate(bursts) if a - EARLY_S <= t < b), None)
        if k is not None:
            per_burst[k] += 1
            if errors[k] is None:
                errors[k] = 1e3 * (t - bursts[k][0])
        elif not any(a <= t < b for a, b in unsure):
            false += 1
    hits = sum(n > 0 for n in per_burst)
    return {
        "n_marked": len(bursts),
        "count": sum(per_burst) + false,
        "hits": hits,
        "fragments": sum(max(0, n - 1) for n in per_burst),
        "false": false,
        "errors_ms": errors,
    }


def run_channel(ch: data.Channel, method: str) -> dict:
    """Detect on every piece of ``ch`` with ``method`` and score against its marks."""
    found = []
    failure = None
    for start, y in pieces(ch):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found.extend((start + _detect(method, y, ch.rate_hz)) / ch.rate_hz)
        except Exception as exc:  # a third-party detector that cannot run on this input
            failure = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
            break
    result = score(np.asarray(found, float), ch.bursts, ch.unsure)
    result.update(
        recording=ch.recording,
        channel=ch.channel,
        method=method,
        onsets_s=[round(float(t), 4) for t in found],
        failure=failure,
    )
    return result


def summarise(rows: list[dict]) -> dict:
    """Pooled figures of one detector's per-channel rows."""
    ok = [r for r in rows if r["failure"] is None]
    errs = np.array([e for r in ok for e in r["errors_ms"] if e is not None], float)

    def med(v):
        return float(np.median(v)) if v.size else math.nan

    return {
        "channels": len(rows),
        "channels_failed": len(rows) - len(ok),
        "exact_counts": sum(r["count"] == r["n_marked"] for r in ok),
        "n_marked": sum(r["n_marked"] for r in rows),
        "count": sum(r["count"] for r in ok),
        "hits": sum(r["hits"] for r in ok),
        "fragments": sum(r["fragments"] for r in ok),
        "false": sum(r["false"] for r in ok),
        "median_error_ms": med(errs),
        "median_abs_error_ms": med(np.abs(errs)),
    }


def run(seeds: int = 1, out_dir=None, quick: bool = False) -> dict:
    """Fetch, detect, score (the ``validate`` suite interface; ``seeds``/``quick`` unused).

    Returns
    -------
    dict
        ``rows``: one per channel and detector (marks, count, hits, fragments, false alarms,
        onset errors in ms, detected onsets in s, failure text); ``summary``: per detector;
        ``skipped``: detectors that are not installed, with the reason.
    """
    import json
    import pathlib

    chans = data.channels(data.fetch())
    methods = [m for m in OURS + OTHERS if available(m) is None]
    rows = [run_channel(ch, m) for m in methods for ch in chans]
    summary = {m: summarise([r for r in rows if r["method"] == m]) for m in methods}
    failed = {(r["recording"], r["channel"]) for r in rows if r["failure"] is not None}
    common = {
        m: summarise(
            [r for r in rows if r["method"] == m and (r["recording"], r["channel"]) not in failed]
        )
        for m in methods
    }
    result = {
        "suite": "real-emg",
        "rows": rows,
        "summary": summary,
        "summary_common": common,
        "skipped": {m: available(m) for m in OURS + OTHERS if available(m) is not None},
    }
    if out_dir is not None:
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "real_emg.json").write_text(json.dumps(result, indent=1))
    return result


def _ms(v) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.0f}"


def format_table(result: dict) -> str:
    """Per-channel and pooled tables as Markdown (as in ``docs/validation.md``)."""
    methods = list(result["summary"])
    lines = [
        "Burst counts and onset errors on real EMG against the hand marks "
        "(`tonuslab validate real-emg`); per cell: count found / marked, onset errors in ms "
        "(detected - marked), `+f` fragments, `!n` false alarms.",
        "",
        "| recording | channel | marked | " + " | ".join(methods) + " |",
        "|---|---|---|" + "---|" * len(methods),
    ]
    by_key: dict = {}
    for r in result["rows"]:
        by_key.setdefault((r["recording"], r["channel"]), {})[r["method"]] = r
    for (rec, ch), per in by_key.items():
        cells = []
        for m in methods:
            r = per[m]
            if r["failure"]:
                cells.append(f"fails ({r['failure'].split(':')[0]})")
                continue
            errs = ", ".join(_ms(e) for e in r["errors_ms"]) or "-"
            extra = (f" +{r['fragments']}f" if r["fragments"] else "") + (
                f" !{r['false']}" if r["false"] else ""
            )
            cells.append(f"{r['count']}/{r['n_marked']}: {errs}{extra}")
        n = next(iter(per.values()))["n_marked"]
        lines.append(f"| {rec} | {ch} | {n} | " + " | ".join(cells) + " |")
    lines += _summary_table(result["summary"], "all marked channels")
    lines += _summary_table(
        result["summary_common"], "only the channels on which every detector ran"
    )
    for m, why in result["skipped"].items():
        lines.append(f"- {m} skipped: {why}")
    return "\n".join(lines)


def _summary_table(summary: dict, what: str) -> list[str]:
    lines = [
        "",
        f"Pooled over {what}:",
        "",
        "| detector | channels exact count | found / marked | hits | fragments | false alarms "
        "| median error ms | median abs error ms | budget (exact, < 50 ms) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m, s in summary.items():
        usable = s["channels"] - s["channels_failed"]
        met = s["exact_counts"] == s["channels"] and s["median_abs_error_ms"] < BUDGET_MEDIAN_ABS_MS
        lines.append(
            f"| {m} | {s['exact_counts']}/{s['channels']}"
            + (f" ({s['channels_failed']} failed)" if s["channels_failed"] else "")
            + f" | {s['count']}/{s['n_marked'] if usable == s['channels'] else '-'} | "
            f"{s['hits']} | {s['fragments']} | {s['false']} | {_ms(s['median_error_ms'])} | "
            f"{_ms(s['median_abs_error_ms'])} | {'met' if met else 'missed'} |"
        )
    return lines


def sensitivity_table(quiet_windows_s=(0.25, 0.5, 1.0), off_times_s=(0.03, 0.1, 0.25, 0.5)) -> str:
    """Markdown grid: tonuslab's detectors with other quiet-window lengths and off-times.

    Every other parameter stays at its default. Reproduces the sensitivity table of
    ``docs/validation.md``:
    ``python -c "from tonuslab.validation.real_emg import sensitivity_table as t; print(t())"``.
    """
    from dsp.onsets import detect_onsets

    prepared = [(ch, pieces(ch)) for ch in data.channels(data.fetch())]
    lines = [
        "| detector | quiet_window_s | min_off_s | channels exact count | found / marked "
        "| fragments | false alarms | median abs error ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method in OURS:
        for qw in quiet_windows_s:
            for off in off_times_s:
                rows = []
                for ch, pcs in prepared:
                    found = []
                    for start, y in pcs:
                        r = detect_onsets(y, ch.rate_hz, method, quiet_window_s=qw, min_off_s=off)
                        found.extend((start + r.onsets) / ch.rate_hz)
                    rows.append({**score(np.asarray(found), ch.bursts, ch.unsure), "failure": None})
                s = summarise(rows)
                lines.append(
                    f"| {method} | {qw:g} | {off:g} | {s['exact_counts']}/{s['channels']} | "
                    f"{s['count']}/{s['n_marked']} | {s['fragments']} | {s['false']} | "
                    f"{_ms(s['median_abs_error_ms'])} |"
                )
    return "\n".join(lines)
