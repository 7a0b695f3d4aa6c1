"""Exceptions raised by :mod:`acquire`.

Every user-facing error is a subclass of :class:`AcquisitionError` with a one-line message that
names the problem and what to do; the CLI prints it and exits with code 2.
"""


class AcquisitionError(Exception):
    """Base class for recording problems (source unreachable, disk full, bad session file)."""


class SessionFileError(AcquisitionError):
    """A file cannot be used as a tonuslab session file (base of the reader's errors)."""


class NotASessionFileError(SessionFileError):
    """The file is not HDF5, or is HDF5 without the tonuslab session marker."""


class TruncatedSessionError(SessionFileError):
    """The file is damaged or cut short (e.g. the recorder was killed); try ``tonuslab recover``."""


class NewerSchemaError(SessionFileError):
    """The file uses a newer major version of the session schema than this tonuslab reads."""


class OlderSchemaError(SessionFileError):
    """The file uses a pre-release (major 0) session schema that this tonuslab no longer reads."""


class MetadataError(AcquisitionError):
    """Session metadata is invalid (unknown field, wrong type, out-of-range value)."""


class PersonalDataError(MetadataError):
    """Metadata would store identifying personal data (a name, a birth date...): refused."""


class DiskFullError(AcquisitionError):
    """The disk filled up while recording; data written before it stays readable."""


class SourceError(AcquisitionError):
    """A data source (serial port, BLE device, TCP peer, capture file) cannot be used."""


class LinkLostError(SourceError):
    """The link to the device was lost (port vanished, peer closed) and was not restored."""


class CaptureError(AcquisitionError):
    """A wire-capture file is not a capture, or is damaged beyond its last valid record."""


class SourceNotFoundError(SourceError):
    """No foreign source (e.g. no LSL stream) matched the URL within the timeout."""


class SourceUnitError(SourceError):
    """A source channel has a unit tonuslab cannot convert (give ``emg_unit``/``emg_scale``)."""


class SourceChannelError(SourceError):
    """A channel asked for in a source URL does not exist in the stream (index or label)."""


class SourceRateChangedError(SourceError):
    """A stream's sampling rate changed while recording (the data so far is kept)."""


class ProtocolAborted(AcquisitionError):
    """A guided protocol (e.g. ``hreflex``) stopped before its end for another reason than the
    operator's stop (a refused stimulation, a wrong EMG channel); the recording is saved."""
