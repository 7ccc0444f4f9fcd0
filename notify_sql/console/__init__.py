"""The operator console (``notify-sql serve``): see :mod:`notify_sql.console.app`."""

from notify_sql.console.app import Settings, create_app

__all__ = ["Settings", "create_app"]
