"""ChannelScaling: the one place counts become physical units."""

import numpy as np

from firmware_iface.messages import ChannelInfo
from firmware_iface.scaling import ChannelScaling


def test_counts_to_physical_matches_the_formula_per_channel():
    counts = np.array([[0, -100], [2**31 - 1, -(2**31)], [7, 3]], dtype=np.int32)
    s = ChannelScaling.from_channels([{"scale": 0.5, "offset": 2.0}, {"scale": 1e-3}])
    out = s.to_physical(counts)
    expected = np.empty((3, 2))
    for i in range(3):  # by hand, one value at a time, in float64
        expected[i, 0] = (float(counts[i, 0]) - 2.0) * 0.5
        expected[i, 1] = (float(counts[i, 1]) - 0.0) * 1e-3
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(s.select([1]).to_physical(counts[:, [1]]), expected[:, [1]])


def test_channel_info_objects_and_mappings_give_the_same_table():
    info = ChannelInfo("emg0", "emg", "uV", 0.25, 10.0, 20.0, 450.0)
    a = ChannelScaling.from_channels([info])
    b = ChannelScaling.from_channels([{"scale": 0.25, "offset": 10.0}])
    np.testing.assert_array_equal(a.scale, b.scale)
    np.testing.assert_array_equal(a.offset, b.offset)
    assert a.n_channels == 1
