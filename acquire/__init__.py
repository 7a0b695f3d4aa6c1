"""Recording: sources, clock mapping and the HDF5 session file."""

from acquire.errors import AcquisitionError

__all__ = ["AcquisitionError"]
