"""The whole product on the emulated device: record, analyse, report, profile.

:func:`run_full_demo` records a stretch session and an H-reflex session from the emulated device
(``sim://`` URLs through :class:`acquire.recorder.Recorder`, as fast as the machine allows),
analyses both (results stored in the files), writes one HTML report and prints the spasticity
profiles next to the simulator's ground truth.

- Stretch: ``sim://PROFILE?program=tsrt``: the virtual patient performs the TSRT velocity ladder
  (slow stretches for the range, then increasing velocities) while the recorder streams it.
- H-reflex: the host drives an authenticated stimulation program through the device protocol
  (a recruitment ladder 10 s apart, then a 1 Hz block for rate-dependent depression), each pulse
  sent once the device's clock has reached its planned time.
"""

from __future__ import annotations

import pathlib
import time

#: Default simulator profiles of the demo.
STRETCH_PROFILE = "moderate_elbow"
HREFLEX_PROFILE = "soleus_spastic"


def _metadata_for(profile, protocol: str) -> dict:
    meta = {
        "subject_id": "DEMO01",
        "muscle": profile.muscle,
        "protocol": protocol,
        "stretch_direction_sign": int(getattr(profile, "goniometer_sign", 1)),
        "session_label": f"demo {protocol}",
    }
    if protocol == "stretch":
        meta["passive_range_deg"] = [float(profile.range_min_deg), float(profile.range_max_deg)]
    return meta


def record_stretch_session(
    path, *, profile: str = STRETCH_PROFILE, seed: int = 1, n_per_level: int = 2
) -> pathlib.Path:
    """Record a TSRT protocol of ``profile`` from the emulated device into ``path``.

    The virtual patient performs 2 slow stretches (range) then ``n_per_level`` stretches at each
    of 5 increasing velocities (:func:`virtual_patient.tsrt_protocol`); the recorder streams it
    through the device protocol as fast as the machine allows.
    """
    from acquire.recorder import Recorder
    from firmware_iface.emulator import emulator_link, make_device
    from virtual_patient import PatientSource, get_profile, tsrt_protocol
    from virtual_patient.stretch import planned_duration_s

    p = get_profile(profile)
    program = tsrt_protocol(p, n_per_level=n_per_level)
    last = program[-1]
    duration = last.start_s + planned_duration_s(last, p) + 3.0

    def open_emulator(_url):
        device = make_device(PatientSource(profile, seed=seed, program=program))
        return emulator_link(device, speed="fast")

    rec = Recorder(
        f"sim://{profile}?seed={seed}&speed=fast",
        path,
        metadata=_metadata_for(p, "stretch"),
        duration_s=duration,
        capture=False,
        overwrite=True,
        link_opener=open_emulator,
    )
    rec.run()
    return pathlib.Path(path)


def hreflex_program(profile, *, step_ma: float = 2.0, n_depression: int = 8):
    """(time_s, intensity_ma, width_us, n_pulses, interval_s) of the demo's stimulation program.

    The recruitment ladder is single pulses 10 s apart; the 1 Hz depression block is one
    device-timed train (``n_pulses`` pulses ``interval_s`` apart), so its intervals are exact
    on the device clock however busy the host is (a host-timed 1 Hz block on a loaded machine
    broke the analysis's 10 % rhythm tolerance).
    """
    from virtual_patient import recruitment_ladder, test_intensity_ma

    ladder = recruitment_ladder(profile, step_ma=step_ma, interval_s=10.0)
    out = [(s.time_s, s.intensity_ma, int(s.width_us), 1, 0.0) for s in ladder]
    t = out[-1][0] + 10.0
    test = float(test_intensity_ma(profile))
    out.append((t, test, 1000, int(n_depression), 1.0))
    return out


def record_hreflex_session(
    path,
    *,
    profile: str = HREFLEX_PROFILE,
    seed: int = 2,
    step_ma: float = 2.0,
    link_capacity_bytes: int = 4096,
) -> pathlib.Path:
    """Record an H-reflex session: the host triggers each pulse through the device protocol.

    The emulated device runs as fast as the link drains; a small link buffer keeps it close to
    the host, and each pulse is timed from where the device put the previous one (the
    ``first_emg_index`` of its acknowledgement), so the program's intervals hold on the device
    clock whatever the machine's speed.
    """
    from acquire.recorder import Recorder
    from firmware_iface.auth import new_key
    from firmware_iface.emulator import emulator_link, make_device
    from virtual_patient import PatientSource, get_profile

    path = pathlib.Path(path)
    p = get_profile(profile)
    program = hreflex_program(p, step_ma=step_ma)
    key = new_key()

    def open_emulator(_url):
        device = make_device(PatientSource(profile, seed=seed), stim_key=key)
        return emulator_link(device, speed="fast", capacity=link_capacity_bytes)

    rec = Recorder(
        f"sim://{profile}?seed={seed}&speed=fast",
        path,
        metadata=_metadata_for(p, "hreflex"),
        config={"emg_rate_hz": 5000},
        stim_key=key,
        capture=False,
        overwrite=True,
        link_opener=open_emulator,
    )
    rec.open()
    try:
        fs = rec.emg_rate_hz
        lead = 0  # device samples ahead of what the recorder has consumed
        late = 0.0  # how late pulses land on average (samples), to send them that much earlier
        target = round(program[0][0] * fs)
        k = 0
        while rec.step(0.005):
            consumed = rec.latest_emg_index()
            if k < len(program) and consumed + lead >= target - late:
                _t, intensity, width, n_pulses, interval_s = program[k]
                if n_pulses > 1:
                    accepted = rec.client.stimulate(
                        intensity, width, mode="train", pulses=n_pulses,
                        interval_ms=interval_s * 1000.0,
                    )  # fmt: skip
                else:
                    accepted = rec.client.stimulate(intensity, width)
                late = 0.5 * late + 0.5 * max(0.0, late + accepted.first_emg_index - target)
                lead = max(0, accepted.first_emg_index - rec.latest_emg_index())
                # where the device placed the last pulse of this command
                last = accepted.first_emg_index + round((n_pulses - 1) * interval_s * fs)
                _t += (n_pulses - 1) * interval_s
                k += 1
                if k < len(program):
                    target = last + round((program[k][0] - _t) * fs)
                else:
                    target = last + round(2.0 * fs)
            elif k >= len(program) and consumed >= target:
                break
    finally:
        rec.close()
    return path


def run_full_demo(
    out_dir,
    *,
    stretch_profile: str = STRETCH_PROFILE,
    hreflex_profile: str = HREFLEX_PROFILE,
    seed: int = 1,
    print_fn=print,
) -> dict:
    """Record, analyse and report a stretch and an H-reflex session on the emulated device.

    Parameters
    ----------
    out_dir : path-like
        Folder for ``stretch.h5``, ``hreflex.h5`` and ``report.html``.
    stretch_profile, hreflex_profile : str
        Virtual-patient profiles.
    seed : int
    print_fn : callable
        Where progress and the profiles go (``print`` by default).

    Returns
    -------
    dict
        ``files`` (paths), ``summaries`` (analysis summaries), ``report`` (path),
        ``seconds`` (wall time per step).
    """
    from tonuslab.analysis import analyze_file
    from tonuslab.profile import build_profile
    from tonuslab.report import write_report

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timing = {}
    files = {"stretch": out / "stretch.h5", "hreflex": out / "hreflex.h5"}

    t = time.perf_counter()
    print_fn(f"recording a stretch session (sim://{stretch_profile}, TSRT protocol)...")
    record_stretch_session(files["stretch"], profile=stretch_profile, seed=seed)
    timing["record_stretch"] = time.perf_counter() - t

    t = time.perf_counter()
    print_fn(f"recording an H-reflex session (sim://{hreflex_profile}, stimulation ladder)...")
    record_hreflex_session(files["hreflex"], profile=hreflex_profile, seed=seed + 1)
    timing["record_hreflex"] = time.perf_counter() - t

    summaries = {}
    for name, path in files.items():
        t = time.perf_counter()
        summaries[name] = analyze_file(path)
        timing[f"analyze_{name}"] = time.perf_counter() - t

    t = time.perf_counter()
    report = write_report(
        [files["stretch"], files["hreflex"]],
        out / "report.html",
        summaries=[summaries["stretch"], summaries["hreflex"]],
        compare_sessions=False,
    )
    timing["report"] = time.perf_counter() - t

    from virtual_patient import get_profile

    truth = {
        "stretch": get_profile(stretch_profile),
        "hreflex": get_profile(hreflex_profile),
    }
    for name, summary in summaries.items():
        print_fn("")
        print_fn(f"== {name} session: {files[name]}")
        print_fn(build_profile(summary).format_text())
        p = truth[name]
        if name == "stretch":
            # The profile reports DSRT at EMG onset (the literature's convention), which comes a
            # conduction delay after the threshold crossing: the expected slope is mu - delay.
            print_fn(
                f"  simulator truth ({stretch_profile}): TSRT {p.lambda_deg:g} deg; mu "
                f"{p.mu_s:g} s at the reflex trigger, so about {p.mu_s - p.reflex_delay_s:.3g} s "
                f"at EMG onset (mu - {p.reflex_delay_s * 1e3:g} ms conduction delay), the "
                "convention reported above"
            )
        else:
            from virtual_patient import depression_factor

            ladder = p.hmax_mmax * depression_factor(p, 10.0)
            print_fn(
                f"  simulator truth ({hreflex_profile}): Hmax/Mmax {p.hmax_mmax:g} when rested, "
                f"{ladder:.3g} at the recruitment ladder's 10 s interval (rate-dependent "
                f"depression); H at 1 Hz / H at 0.1 Hz "
                f"{depression_factor(p, 1.0) / depression_factor(p, 10.0):.3g}"
            )
    print_fn("")
    print_fn(f"report: {report}")
    print_fn("times: " + ", ".join(f"{k} {v:.1f} s" for k, v in timing.items()))
    return {
        "files": {k: str(v) for k, v in files.items()},
        "summaries": summaries,
        "report": str(report),
        "seconds": timing,
    }


#: TSRT shift (deg) of the simulated patient at each time after a test bolus (hours): a made-up
#: effect that rises, holds and wears off, to exercise ``tonuslab compare`` (not clinical data).
BOLUS_TSRT_SHIFT_DEG = {0.0: 0.0, 0.5: 10.0, 1.0: 45.0, 2.0: 55.0, 4.0: 60.0, 8.0: 50.0, 24.0: 3.0}


def simulate_bolus_series(
    out_dir,
    *,
    profile: str = STRETCH_PROFILE,
    shifts_deg: dict | None = None,
    seed: int = 10,
) -> list[pathlib.Path]:
    """Simulated sessions of one patient before and after an intrathecal baclofen test bolus.

    Each session is the virtual patient's TSRT protocol with ``lambda_deg`` raised by the
    shift for its time point (default :data:`BOLUS_TSRT_SHIFT_DEG`); the time after the bolus
    is stored in the metadata (``extra.timepoint_h``), so ``tonuslab compare`` needs no
    ``--times``. Sessions are simulated directly (not streamed through the emulated device).

    Returns
    -------
    list of pathlib.Path
        ``bolus_<hours>h.h5`` files in time order.
    """
    from tonuslab.session import save_recording
    from virtual_patient import get_profile, simulate_stretch_session

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = get_profile(profile)
    paths = []
    for i, (hours, shift) in enumerate(sorted((shifts_deg or BOLUS_TSRT_SHIFT_DEG).items())):
        p = get_profile(base, lambda_deg=base.lambda_deg + shift)
        rec = simulate_stretch_session(p, seed=seed + i)
        meta = _metadata_for(base, "stretch")
        meta["session_label"] = "baseline" if hours == 0 else f"{hours:g} h after bolus"
        meta["extra"] = {"timepoint_h": float(hours)}
        paths.append(
            save_recording(rec, out / f"bolus_{hours:g}h.h5", metadata=meta, overwrite=True)
        )
    return paths


# ------------------------------------------------------------------ CLI glue for `tonuslab demo`
def add_arguments(parser) -> None:
    """Options of the full demo (for ``tonuslab demo`` once it runs :func:`run_full_demo`)."""
    parser.add_argument(
        "-o",
        "--out",
        type=pathlib.Path,
        default=pathlib.Path("tonuslab-demo"),
        help="folder for the sessions and the report (default ./tonuslab-demo)",
    )
    parser.add_argument("--stretch-profile", default=STRETCH_PROFILE, help="simulated patient")
    parser.add_argument("--hreflex-profile", default=HREFLEX_PROFILE, help="simulated patient")
    parser.add_argument("--seed", type=int, default=1)


def run(args) -> int:
    """Run :func:`run_full_demo` from parsed arguments; exit code 0."""
    from tonuslab.errors import UsageError
    from virtual_patient import PROFILE_NAMES

    for name in (args.stretch_profile, args.hreflex_profile):
        if name not in PROFILE_NAMES:
            raise UsageError(f"unknown profile '{name}'; choose one of {', '.join(PROFILE_NAMES)}")
    run_full_demo(
        args.out,
        stretch_profile=args.stretch_profile,
        hreflex_profile=args.hreflex_profile,
        seed=args.seed,
    )
    return 0
