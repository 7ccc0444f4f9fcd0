"""Row level security: an end user sees only their own rows; anon sees nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors

USER_A = uuid.UUID("aaaaaaaa-0000-0000-0000-00000000000a")
USER_B = uuid.UUID("bbbbbbbb-0000-0000-0000-00000000000b")
CLOSED_TABLES = (
    "queue_jobs",
    "notification_events",
    "sms_messages",
    "sms_links",
    "provider_callbacks",
    "notification_logs",
    "notify_sql_migrations",
    "notify_sql_functions",
    "notify_sql_catalog",
)


def seed(conn: psycopg.Connection[Any]) -> None:
    for user in (USER_A, USER_B):
        conn.execute(
            "INSERT INTO notify.notification_deliveries (recipient_user_id, channel) "
            "VALUES (%s, 'email'), (%s, 'sms')",
            (user, user),
        )
        conn.execute(
            "INSERT INTO notify.notification_preferences (user_id, channel, enabled) "
            "VALUES (%s, 'sms', true)",
            (user,),
        )


def act_as(conn: psycopg.Connection[Any], role: str, user: uuid.UUID | None) -> None:
    conn.execute(f"SET ROLE {role}")
    claims = json.dumps({"sub": str(user), "role": role}) if user else ""
    conn.execute("SELECT set_config('request.jwt.claims', %s, false)", (claims,))


@pytest.fixture
def seeded(db: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    seed(db)
    yield db
    db.execute("RESET ROLE")


def recipients(conn: psycopg.Connection[Any], table: str, column: str) -> set[uuid.UUID]:
    return {row[0] for row in conn.execute(f"SELECT {column} FROM notify.{table}")}


def test_a_user_reads_only_their_own_deliveries_and_preferences(
    seeded: psycopg.Connection[Any],
) -> None:
    act_as(seeded, "authenticated", USER_A)
    assert recipients(seeded, "notification_deliveries", "recipient_user_id") == {USER_A}
    assert recipients(seeded, "notification_preferences", "user_id") == {USER_A}
    act_as(seeded, "authenticated", USER_B)
    assert recipients(seeded, "notification_deliveries", "recipient_user_id") == {USER_B}


def test_a_user_without_an_identity_reads_nothing(seeded: psycopg.Connection[Any]) -> None:
    act_as(seeded, "authenticated", None)
    assert recipients(seeded, "notification_deliveries", "recipient_user_id") == set()
    assert recipients(seeded, "notification_preferences", "user_id") == set()


def test_a_user_toggles_only_their_own_preferences(seeded: psycopg.Connection[Any]) -> None:
    act_as(seeded, "authenticated", USER_A)
    changed = seeded.execute(
        "UPDATE notify.notification_preferences SET enabled = false WHERE channel = 'sms'"
    ).rowcount
    assert changed == 1
    hidden = seeded.execute(
        "UPDATE notify.notification_preferences SET enabled = false WHERE user_id = %s",
        (USER_B,),
    ).rowcount
    assert hidden == 0
    with pytest.raises(errors.InsufficientPrivilege):
        seeded.execute(
            "INSERT INTO notify.notification_preferences (user_id, channel) VALUES (%s, 'push')",
            (USER_B,),
        )
    with pytest.raises(errors.InsufficientPrivilege):
        seeded.execute("UPDATE notify.notification_preferences SET opted_out = false")
    seeded.execute("RESET ROLE")
    enabled = seeded.execute(
        "SELECT user_id, enabled FROM notify.notification_preferences ORDER BY user_id"
    ).fetchall()
    assert enabled == [(USER_A, False), (USER_B, True)]


@pytest.mark.parametrize("table", CLOSED_TABLES)
def test_other_tables_are_closed_to_end_users(seeded: psycopg.Connection[Any], table: str) -> None:
    act_as(seeded, "authenticated", USER_A)
    with pytest.raises(errors.InsufficientPrivilege):
        seeded.execute(f"SELECT * FROM notify.{table}")


def test_anon_reads_nothing_at_all(seeded: psycopg.Connection[Any]) -> None:
    act_as(seeded, "anon", USER_A)
    with pytest.raises(errors.InsufficientPrivilege, match="schema notify"):
        seeded.execute("SELECT * FROM notify.notification_deliveries")


def test_the_older_single_claim_setting_identifies_the_user_too(
    seeded: psycopg.Connection[Any],
) -> None:
    """PostgREST before v10 set request.jwt.claim.sub rather than request.jwt.claims."""
    seeded.execute("SET ROLE authenticated")
    seeded.execute("SELECT set_config('request.jwt.claim.sub', %s, false)", (str(USER_B),))
    assert recipients(seeded, "notification_deliveries", "recipient_user_id") == {USER_B}
