"""Errors raised by the virtual patient (one base class, documented subclasses)."""

from __future__ import annotations


class VirtualPatientError(ValueError):
    """Base class of every error raised by :mod:`virtual_patient`."""


class ProfileError(VirtualPatientError):
    """An unknown profile name, an unknown override or an out-of-range parameter."""


class ProgramError(VirtualPatientError):
    """A stretch or stimulation program that cannot be simulated (overlap, order, range)."""


class SourceStateError(VirtualPatientError):
    """A :class:`~virtual_patient.PatientSource` used before ``configure`` or out of order."""
