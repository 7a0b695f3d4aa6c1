"""tonuslab: instrumented measurement of spasticity.

The front door: the ``tonuslab`` CLI, the researcher's Python API, the analysis pipeline and
reports. The work is done by :mod:`firmware_iface` (device protocol), :mod:`acquire` (recording),
:mod:`dsp` (signal processing and metrics) and :mod:`virtual_patient` (simulator).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tonuslab")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
