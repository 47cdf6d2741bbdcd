"""streamrec: real-time implicit-feedback recommendations from an event stream."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("streamrec")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
