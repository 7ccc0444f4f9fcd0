"""Exceptions raised by notify-sql."""

from __future__ import annotations


class NotifySqlError(Exception):
    """Base class: anything notify-sql raises on purpose."""


class InvalidArgument(NotifySqlError, ValueError):
    """An RPC refused its input (SQLSTATE 22023); nothing was written."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class MigrationError(NotifySqlError):
    """The install cannot proceed; the database was left as it was."""


class ServerError(NotifySqlError):
    """A throwaway PostgreSQL server could not be found or started."""
