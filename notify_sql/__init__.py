"""notify-sql: a PostgreSQL-native backbone for product notifications."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("notify-sql")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0.0.0+unknown"
