"""The pure half of ``lsl://``: URL options, sample numbers from timestamps, units, pulses.

No pylsl here: chunks are built as :class:`acquire.sources.lsl.LslSource` journals them.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from acquire.errors import SourceChannelError, SourceError, SourceRateChangedError, SourceUnitError
from acquire.sources import decoder_for, is_source_url
from acquire.sources.base import Block, Chunk, Event, decode_chunk, encode_chunk
from acquire.sources.lsl_clock import StreamClock
from acquire.sources.lsl_url import parse_lsl_url
from acquire.sources.units import parse_stim_text


def stream(name="Amp", rate=2148.1481, channels=(("E0", "microvolts", "EMG"),), fmt="float32"):
    return {
        "name": name, "type": "EMG", "source_id": f"{name}-1", "hostname": "lab", "uid": "u",
        "session_id": "s", "rate_hz": rate, "channel_count": len(channels), "channel_format": fmt,
        "channels": [{"label": a, "unit": b, "type": c} for a, b, c in channels],
        "manufacturer": "", "created_at": 0.0,
    }  # fmt: skip


def decoder(url, main=None, angle=None, markers=None):
    desc = {
        "url": url,
        "options": parse_lsl_url(url).to_dict(),
        "streams": {"emg": main or stream(), "angle": angle, "markers": markers},
    }
    return decoder_for(url, desc)


def data(role, values, stamps, host=0.0):
    arrays = {"values": np.asarray(values, dtype=np.float32), "stamps": np.asarray(stamps)}
    return Chunk("data", {"stream": role}, arrays, host)


def blocks(items, stream=0):
    return [b for b in items if isinstance(b, Block) and b.stream == stream]


def feed_all(dec, chunks):
    out = []
    for c in chunks:
        out += dec.feed(c)
    return out + dec.finish()


# ----------------------------------------------------------------------------- URLs
def test_url_forms():
    assert is_source_url("lsl://Trigno?emg=0,1")
    o = parse_lsl_url("lsl://Trigno?emg=0,1,EMG%203&angle=4&ttl=5&ttl_threshold=2.5&markers=Stim")
    assert o.stream.name == "Trigno" and o.emg == ("0", "1", "EMG 3")
    assert (o.angle, o.ttl, o.ttl_threshold, o.markers.name) == ("4", "5", 2.5, "Stim")
    o = parse_lsl_url("lsl://?type=EMG&source_id=abc&hostname=pc1")
    assert o.stream.predicate() == "type='EMG' and source_id='abc' and hostname='pc1'"
    o = parse_lsl_url("lsl://EMG?angle_stream=Gonio:1&emg_unit=mV")
    assert (o.angle_stream.name, o.angle_stream_channel, o.emg_unit) == ("Gonio", "1", "mV")
    assert parse_lsl_url("lsl://A?angle_stream=G").angle_stream_channel == "0"
    assert parse_lsl_url("lsl://it's").stream.predicate() == 'name="it\'s"'


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("lsl://", "say which stream"),
        ("lsl://A?emgs=0", "unknown option 'emgs'"),
        ("lsl://A?emg_unit=counts", "emg_unit must be uV, mV or V"),
        ("lsl://A?emg_scale=-1", "emg_scale must be positive"),
        ("lsl://A?angle=1&angle_stream=G", "either as angle=K"),
        ("lsl://A?timeout=soon", "timeout must be a number"),
    ],
)
def test_bad_urls_are_one_line(url, words):
    with pytest.raises(SourceError, match=words) as info:
        parse_lsl_url(url)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- clock
def test_known_values_at_a_non_integer_rate():
    rate = 2148.1481
    dec = decoder("lsl://Amp")
    assert dec.info.emg_rate_hz == rate and dec.info.index_origin == "clock"
    idx = np.arange(1000)
    t = 100.0 + idx / rate
    items = feed_all(dec, [data("emg", idx[i : i + 37, None] * 0.5, t[i : i + 37])
                           for i in range(0, 1000, 37)])  # fmt: skip
    bl = blocks(items)
    got = np.concatenate([b.counts for b in bl])[:, 0] * dec.info.channels[0].scale
    np.testing.assert_allclose(got, idx * 0.5, atol=1e-9)
    assert [b.first_index for b in bl] == list(range(0, 1000, 37))
    assert bl[0].device_time_us == 100_000_000


def test_holes_are_exact_in_and_between_chunks():
    rate = 2000.0
    clock = StreamClock(rate, jitter_ms=5.0)
    idx = np.arange(20000)
    keep = ~(((idx >= 3000) & (idx < 3200)) | ((idx >= 9000) & (idx < 9013)))
    kept = idx[keep]
    t = 5.0 + kept / rate
    numbers = np.concatenate([clock.number(t[i : i + 100]) for i in range(0, t.size, 100)])
    np.testing.assert_array_equal(numbers, kept)


def test_jittered_host_stamps_make_no_false_gaps():
    rate, n_chunk = 2000.0, 40
    rng = np.random.default_rng(1)
    dec = decoder("lsl://Amp", main=stream(rate=rate))
    chunks = []
    for k in range(500):  # 10 s in 20 ms chunks, each stamped on arrival (SD 1 ms, <= 2 ms)
        idx = k * n_chunk + np.arange(n_chunk)
        j = float(np.clip(rng.normal(0, 1e-3), -2e-3, 2e-3))
        if 250 <= k < 263:  # and one real hole of 520 samples (260 ms)
            continue
        chunks.append(data("emg", idx[:, None], 1.0 + idx / rate + j))
    bl = blocks(feed_all(dec, chunks))
    jumps = [(b.first_index - (a.first_index + a.n_samples)) for a, b in itertools.pairwise(bl)]
    holes = [j for j in jumps if j != 0]
    assert len(holes) == 1 and abs(holes[0] - 520) <= 8  # the hole, within the jitter (4 ms)


def test_zero_jitter_margin_sees_a_two_sample_hole():
    clock = StreamClock(1000.0, jitter_ms=0.0)
    idx = np.array([0, 1, 2, 5, 6])
    np.testing.assert_array_equal(clock.number(idx / 1000.0), idx)


def test_a_stream_slower_than_it_declares_is_refused():
    dec = decoder("lsl://Amp", main=stream(rate=2000.0))
    idx = np.arange(1000)
    with pytest.raises(SourceRateChangedError, match="samples come at 1000 Hz"):
        for i in range(0, 20000, 1000):  # 1 ms apart: 1000 Hz, not 2000
            dec.feed(data("emg", (i + idx)[:, None], (i + idx) / 1000.0))


def test_a_stream_back_at_another_rate_is_refused():
    dec = decoder("lsl://Amp", main=stream(rate=2000.0))
    desc = {"streams": {"emg": stream(rate=1000.0), "angle": None, "markers": None}}
    with pytest.raises(SourceRateChangedError, match="came back at 1000 Hz"):
        dec.feed(Chunk("reopen", desc, {}, 0.0))


def test_second_stream_is_mapped_through_its_clock_offset():
    main = stream(rate=1000.0)
    gonio = stream("Gonio", rate=100.0, channels=(("knee", "degrees", "Angle"),))
    dec = decoder("lsl://Amp?angle_stream=Gonio", main=main, angle=gonio)
    assert dec.info.angle_rate_hz == 100.0
    items = dec.feed(Chunk("clock", {"stream": "angle", "offset_s": -3.25}, {}, 0.0))
    items += dec.feed(data("emg", np.zeros((1000, 1)), 10.0 + np.arange(1000) / 1000.0))
    # the goniometer's machine is 3.25 s ahead: its stamp 13.5 s is 10.25 s here
    items += dec.feed(data("angle", np.full((10, 1), 12.0), 13.5 + np.arange(10) / 100.0))
    (ang,) = blocks(items, 1)
    assert ang.device_time_us == 10_250_000
    np.testing.assert_allclose(ang.counts[:, 0] * dec.info.channels[1].scale, 12.0)


# ----------------------------------------------------------------------------- units, channels
def test_default_emg_is_voltage_or_type_emg_and_units_convert():
    main = stream(channels=(("a", "mV", ""), ("b", "", "EMG"), ("g", "deg", "Angle"),
                            ("t", "V", "Trigger")))  # fmt: skip
    with pytest.raises(SourceUnitError, match=r"channel 1 .b. .* 'no unit'.*emg_unit"):
        decoder("lsl://Amp?angle=2&ttl=3", main=main)
    dec = decoder("lsl://Amp?angle=2&ttl=3&emg=0", main=main)
    assert [c.name for c in dec.info.channels] == ["a", "g"]
    items = dec.feed(data("emg", [[0.5, 0, 30.0, 0]], [1.0]))
    emg, ang = blocks(items)[0], blocks(items, 1)[0]
    assert emg.counts[0, 0] * dec.info.channels[0].scale == pytest.approx(500.0)
    assert ang.counts[0, 0] * dec.info.channels[1].scale == pytest.approx(30.0)
    dec = decoder("lsl://Amp?angle=2&ttl=3&emg_scale=0.25", main=main)
    assert [c.name for c in dec.info.channels] == ["a", "b", "g"]


@pytest.mark.parametrize(
    ("url", "error", "words"),
    [
        ("lsl://Amp?emg=3", SourceChannelError, "has 1 channels .0 to 0: 0=E0"),
        ("lsl://Amp?emg=E9", SourceChannelError, "no channel .* has that label"),
        ("lsl://Amp?angle=0", SourceChannelError, "describes no EMG channel"),
    ],
)
def test_bad_channels_are_one_line(url, error, words):
    with pytest.raises(error, match=words):
        decoder(url)


def test_unknown_unit_is_refused_unless_given():
    main = stream(channels=(("E0", "counts", "EMG"),))
    with pytest.raises(SourceUnitError, match="'counts', not a voltage"):
        decoder("lsl://Amp", main=main)
    assert decoder("lsl://Amp?emg_unit=mV", main=main)._emg_factor.tolist() == [1000.0]


# ----------------------------------------------------------------------------- pulses
def test_stim_labels():
    assert parse_stim_text("stim 12.5mA") == {"intensity_ma": 12.5, "width_us": None}
    assert parse_stim_text("Stim: 8,5 mA 500us") == {"intensity_ma": 8.5, "width_us": 500.0}
    assert parse_stim_text("start of block") is None


def test_ttl_edges_are_pulses_named_by_markers():
    rate = 1000.0
    main = stream(rate=rate, channels=(("E0", "uV", "EMG"), ("ttl", "V", "Trigger")))
    markers = stream("Stim", rate=0.0, channels=(("m", "", "Markers"),), fmt="string")
    dec = decoder("lsl://Amp?ttl=1&ttl_threshold=2.5&markers=Stim", main=main, markers=markers)
    idx = np.arange(5000)
    ttl = np.zeros(5000)
    for edge in (1000, 2500, 4000):
        ttl[edge : edge + 5] = 5.0
    chunks = []
    for i in range(0, 5000, 100):
        chunks.append(data("emg", np.stack([idx[i : i + 100], ttl[i : i + 100]], 1),
                           idx[i : i + 100] / rate))  # fmt: skip
        if i == 1000:  # named 4 ms late by another process, and a plain marker
            texts = ["stim 12.5mA", "relax"]
            chunks.append(Chunk("data", {"stream": "markers", "texts": texts},
                                {"stamps": np.array([1.004, 1.2])}, 0.0))  # fmt: skip
        if i == 3000:  # a stimulus marker with no TTL edge near it
            chunks.append(Chunk("data", {"stream": "markers", "texts": ["stim 3mA"]},
                                {"stamps": np.array([3.3])}, 0.0))  # fmt: skip
    events = [e for e in feed_all(dec, chunks) if isinstance(e, Event)]
    stims = [e for e in events if e.kind == "stimulus"]
    assert [e.emg_sample_index for e in stims] == [1000, 2500, 4000]
    assert stims[0].intensity_ma == 12.5 and stims[0].params["marker_offset_ms"] == 4.0
    assert np.isnan(stims[1].intensity_ma) and np.isnan(stims[2].intensity_ma)
    marks = {e.label: e for e in events if e.kind == "marker"}
    assert marks["relax"].emg_sample_index == 1200
    assert marks["stim 3mA"].params["unmatched"] is True


def test_a_stim_marker_without_ttl_is_the_pulse():
    markers = stream("Stim", rate=0.0, channels=(("m", "", ""),), fmt="string")
    dec = decoder("lsl://Amp?markers=Stim", main=stream(rate=1000.0), markers=markers)
    items = dec.feed(Chunk("data", {"stream": "markers", "texts": ["stim 7mA 200us"]},
                           {"stamps": np.array([0.5])}, 0.0))  # fmt: skip
    assert items == []  # held until the EMG clock is known
    items = dec.feed(data("emg", np.zeros((1000, 1)), np.arange(1000) / 1000.0))
    (stim,) = [e for e in items if isinstance(e, Event)]
    assert (stim.kind, stim.emg_sample_index, stim.intensity_ma, stim.width_us) == (
        "stimulus", 500, 7.0, 200.0,
    )  # fmt: skip


def test_journalled_chunks_decode_bit_for_bit():
    rng = np.random.default_rng(3)
    chunks = [data("emg", rng.normal(0, 50, (64, 1)), 2.0 + (np.arange(64) + 64 * k) / 2148.1481)
              for k in range(20)]  # fmt: skip
    a = feed_all(decoder("lsl://Amp"), chunks)
    b = feed_all(decoder("lsl://Amp"), [decode_chunk(encode_chunk(c), c.host_time_s)
                                        for c in chunks])  # fmt: skip
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.first_index == y.first_index and np.array_equal(x.counts, y.counts)


def test_a_late_marker_is_moved_onto_the_stimulus_artifact():
    rate = 5000.0
    markers = stream("Stim", rate=0.0, channels=(("m", "", ""),), fmt="string")
    rng = np.random.default_rng(2)
    emg = rng.normal(0, 3.0, 10000)
    for pulse in (3000, 7000):
        emg[pulse : pulse + 5] += 2000.0  # the artifact: a jump within one sample
        emg[pulse + 5 : pulse + 100] -= 400.0 * np.exp(-np.arange(95) / 20.0)
    idx = np.arange(10000)
    for refine, expected in (("artifact", [3000, 7000]), ("none", [3030, 7040])):
        dec = decoder(f"lsl://Amp?markers=Stim&refine={refine}", main=stream(rate=rate),
                      markers=markers)  # fmt: skip
        chunks = [data("emg", emg[i : i + 250, None], idx[i : i + 250] / rate)
                  for i in range(0, 10000, 250)]  # fmt: skip
        # the stimulator's software sends its markers 6 and 8 ms after the pulses
        chunks.insert(20, Chunk("data", {"stream": "markers", "texts": ["stim 9mA"] * 2},
                                {"stamps": np.array([3030, 7040]) / rate}, 0.0))  # fmt: skip
        stims = [e for e in feed_all(dec, chunks) if isinstance(e, Event)]
        assert [e.emg_sample_index for e in stims] == expected
        assert [e.intensity_ma for e in stims] == [9.0, 9.0]
    assert stims[0].params["timing"] == "marker"
    dec = decoder("lsl://Amp?markers=Stim", main=stream(rate=rate), markers=markers)
    quiet = [data("emg", rng.normal(0, 3.0, (5000, 1)), idx[:5000] / rate),
             Chunk("data", {"stream": "markers", "texts": ["stim 9mA"]},
                   {"stamps": np.array([0.5])}, 0.0)]  # fmt: skip
    (stim,) = [e for e in feed_all(dec, quiet) if isinstance(e, Event)]
    assert stim.emg_sample_index == 2500 and stim.params["artifact_found"] is False


def test_a_sequence_counter_takes_precedence_over_jittered_stamps():
    rate = 1000.0
    main = stream(rate=rate, channels=(("nSeq", "", ""), ("A1", "mV", "EMG")))
    dec = decoder("lsl://Amp?seq=nSeq&seq_modulo=16", main=main)
    assert dec.info.index_origin == "counter" and [c.name for c in dec.info.channels] == ["A1"]
    rng = np.random.default_rng(5)
    idx = np.arange(6000)
    keep = ~(((idx >= 1000) & (idx < 1003)) | ((idx >= 3000) & (idx < 3040)))
    kept = idx[keep]
    chunks = []
    for i in range(0, kept.size, 50):  # host stamps per chunk, SD 1.5 ms: a 3-sample hole hides
        k = kept[i : i + 50]
        stamp = k / rate + float(np.clip(rng.normal(0, 1.5e-3), -3e-3, 3e-3))
        chunks.append(data("emg", np.stack([k % 16, k * 1e-3], 1), stamp))
    bl = blocks(feed_all(dec, chunks))
    got = np.concatenate([b.first_index + np.arange(b.n_samples) for b in bl])
    np.testing.assert_array_equal(got, kept)  # both holes exact, wraps counted from the stamps
    with pytest.raises(SourceError, match="seq_modulo= needs seq=K"):
        parse_lsl_url("lsl://A?seq_modulo=16")
