"""Every call the seed platform's apps (BuildOS: apps/web, apps/worker,
packages/shared-utils) make to a notification / queue / SMS / email function, as the
keys its `supabase.rpc(name, {...})` sends and the result fields it then reads.

docs/switching-from-buildos.md lists the same shapes; test_switching_page keeps the
two equal, so neither can drift.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    function: str
    keys: tuple[str, ...]
    reads: tuple[str, ...] = ()  # result fields read (a scalar result: the function name)
    caller: str = ""


WEBHOOK = "apps/web twilio status webhook"
WORKER = "apps/worker queue"
ADMIN = "apps/web admin notification analytics"
SMS = "shared-utils / worker SMS services"

_SMS_UPDATE_READS = (
    "notification_delivery_id", "user_id", "sent_at", "delivered_at", "attempt_count",
    "max_attempts", "updated_sms", "updated_delivery",
)  # fmt: skip
_CLAIM_READS = (
    "id", "queue_job_id", "user_id", "job_type", "metadata", "attempts", "max_attempts",
    "processing_token",
)  # fmt: skip

SHAPES: tuple[Shape, ...] = (
    Shape("update_sms_status_atomic",
          ("p_message_id", "p_twilio_sid", "p_twilio_status", "p_mapped_status"),
          _SMS_UPDATE_READS, WEBHOOK),
    Shape("update_sms_status_atomic",
          ("p_message_id", "p_twilio_sid", "p_twilio_status", "p_mapped_status", "p_error_code",
           "p_error_message"),
          _SMS_UPDATE_READS, WEBHOOK),
    Shape("add_queue_job",
          ("p_user_id", "p_job_type", "p_metadata", "p_scheduled_for", "p_priority"),
          ("add_queue_job",), WEBHOOK),
    Shape("add_queue_job",
          ("p_user_id", "p_job_type", "p_metadata", "p_priority", "p_scheduled_for", "p_dedup_key"),
          ("add_queue_job",), WORKER),
    Shape("claim_pending_jobs", ("p_job_types", "p_batch_size"), _CLAIM_READS, WORKER),
    Shape("complete_queue_job", ("p_job_id", "p_result", "p_processing_token"),
          ("complete_queue_job",), WORKER),
    Shape("fail_queue_job", ("p_job_id", "p_error_message", "p_retry", "p_processing_token"),
          ("fail_queue_job",), WORKER),
    Shape("cancel_jobs_atomic",
          ("p_user_id", "p_job_type", "p_metadata_filter", "p_allowed_statuses"),
          ("id", "queue_job_id", "job_type", "status"), "apps/web brief scheduling"),
    Shape("cancel_brief_jobs_for_date", ("p_user_id", "p_brief_date", "p_exclude_job_id"),
          ("cancelled_count", "cancelled_job_ids"), "apps/worker brief scheduler"),
    Shape("delete_old_completed_queue_jobs", ("p_retention_days", "p_batch_size", "p_job_types"),
          ("deleted_count", "oldest_deleted_completed_at", "newest_deleted_completed_at"),
          "apps/worker queue retention"),
    Shape("emit_notification_event",
          ("p_event_type", "p_event_source", "p_target_user_id", "p_payload", "p_metadata",
           "p_scheduled_for"),
          ("emit_notification_event",), "apps/worker brief notifications"),
    Shape("emit_notification_event",
          ("p_event_type", "p_event_source", "p_actor_user_id", "p_target_user_id", "p_payload",
           "p_metadata"),
          ("emit_notification_event",), "apps/web event notifications"),
    Shape("emit_notification_event",
          ("p_event_type", "p_event_source", "p_actor_user_id", "p_payload", "p_metadata"),
          ("emit_notification_event",), "apps/web admin broadcast"),
    Shape("emit_notification_event",
          ("p_event_type", "p_event_source", "p_target_user_id", "p_payload"),
          ("emit_notification_event",), "apps/worker notifications"),
    Shape("get_notification_delivery_timeline", ("p_interval", "p_granularity"),
          ("time_bucket", "sent", "delivered", "opened", "clicked", "failed"), ADMIN),
    Shape("get_notification_channel_performance", ("p_interval",),
          ("channel", "total_sent", "delivered", "opened", "clicked", "failed", "success_rate",
           "delivery_rate", "open_rate", "click_rate", "avg_delivery_time_ms"), ADMIN),
    Shape("get_notification_event_performance", ("p_interval",),
          ("event_type", "total_events", "total_deliveries", "unique_subscribers",
           "avg_delivery_time_seconds", "open_rate", "click_rate"), ADMIN),
    Shape("get_sms_notification_stats", (),
          ("total_users_with_phone", "users_phone_verified", "users_sms_enabled",
           "users_opted_out", "phone_verification_rate", "sms_adoption_rate", "opt_out_rate",
           "total_sms_sent_24h", "sms_delivery_rate_24h", "avg_sms_delivery_time_seconds"), ADMIN),
    Shape("get_notification_overview_metrics", ("p_interval",),
          ("total_sent", "delivery_success_rate", "avg_open_rate", "avg_click_rate"), ADMIN),
    Shape("get_notification_overview_metrics", ("p_interval", "p_offset"),
          ("total_sent", "delivery_success_rate", "avg_open_rate", "avg_click_rate"), ADMIN),
    Shape("get_notification_failed_deliveries", ("p_interval", "p_limit"),
          ("delivery_id", "event_id", "event_type", "channel", "recipient_user_id",
           "recipient_email", "last_error", "attempts", "max_attempts", "created_at",
           "failed_at"), ADMIN),
    Shape("get_notification_active_subscriptions", (),
          ("user_id", "email", "name", "subscribed_events", "push_enabled", "email_enabled",
           "sms_enabled", "in_app_enabled", "last_notification_sent"), ADMIN),
    Shape("queue_sms_message",
          ("p_user_id", "p_phone_number", "p_message", "p_priority", "p_metadata"),
          ("queue_sms_message",), "apps/web phone verification, worker SMS adapter"),
    Shape("queue_sms_message",
          ("p_user_id", "p_phone_number", "p_message", "p_priority", "p_scheduled_for",
           "p_metadata"),
          ("queue_sms_message",), SMS),
    Shape("check_and_increment_sms_daily_limit", ("p_user_id",),
          ("allowed", "current_count", "limit", "reset_at", "reason"), SMS),
    Shape("check_and_increment_sms_daily_limit", ("p_user_id", "p_increment", "p_default_limit"),
          ("allowed", "current_count", "limit", "reset_at", "reason"), SMS),
    Shape("create_tracking_link", ("p_delivery_id", "p_destination_url"),
          ("create_tracking_link",), "worker SMS / email link shortening"),
    Shape("record_sms_metric",
          ("p_metric_date", "p_metric_hour", "p_user_id", "p_metric_type", "p_metric_value",
           "p_metadata"),
          (), "shared-utils smsMetricsService"),
    Shape("refresh_sms_metrics_daily", (), (), "worker scheduler"),
    Shape("get_sms_daily_metrics", ("p_start_date", "p_end_date"),
          ("metric_date", "scheduled_count", "sent_count", "delivered_count", "failed_count",
           "cancelled_count", "avg_delivery_time_ms", "delivery_success_rate", "llm_cost_usd",
           "sms_cost_usd", "active_users"), "shared-utils smsMetricsService"),
    Shape("get_user_sms_metrics", ("p_user_id", "p_days"),
          ("metric_date", "scheduled_count", "sent_count", "delivered_count", "failed_count",
           "llm_cost_usd", "delivery_rate"), "shared-utils smsMetricsService"),
    Shape("upsert_email_suppression",
          ("p_email", "p_scope", "p_reason", "p_source", "p_metadata"),
          ("upsert_email_suppression",), "apps/web unsubscribe link"),
    Shape("is_email_suppressed", ("p_email", "p_scope"), ("is_email_suppressed",),
          "apps/web / worker email sending"),
)  # fmt: skip

# The queue-side shapes another branch (flow) implements; tests in test_queue_shapes.py.
QUEUE_SHAPES: tuple[Shape, ...] = (
    Shape("reset_stalled_jobs", ("p_stall_timeout",), ("reset_stalled_jobs",), WORKER),
    Shape("reset_stalled_jobs", ("p_stall_timeout", "p_include_job_types"),
          ("reset_stalled_jobs",), WORKER),
    Shape("reset_stalled_jobs", ("p_stall_timeout", "p_exclude_job_types"),
          ("reset_stalled_jobs",), WORKER),
)  # fmt: skip
