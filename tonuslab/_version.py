"""The installed version of tonuslab (``0.0.0+unknown`` when run from an uninstalled tree).

Its own module so that any part of the package can read it without importing the package's
``__init__`` (which imports the public API).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tonuslab")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
