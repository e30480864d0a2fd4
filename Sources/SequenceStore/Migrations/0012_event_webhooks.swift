extension Migrations {
    /// Issue 17, event webhooks out: enrollment events posted to `event_webhook.url`, at least once,
    /// from an outbox written in the transaction that writes the event.
    ///
    /// - `seqd.event_webhook_outbox`: one row per (audit event, webhook type). It is filled by a
    ///   statement-level trigger on `seqd.enrollment_events`, so every writer (the daemon, the CLI,
    ///   the API, an `UPDATE` in psql) produces its rows, a rolled-back change produces none, and
    ///   none can be posted before its change commits. The daemon claims due rows with
    ///   `FOR UPDATE SKIP LOCKED`, posts them outside any transaction and records the outcome.
    /// - Which types are written: the row `event_webhook.types` of `seqd.settings`, which `seqd run`
    ///   writes at start from its configuration (empty when `event_webhook.url` is unset, so an
    ///   installation without event webhooks accumulates nothing). The runtime role may write that
    ///   row: `settings_guard` is replaced to allow it next to the send switch.
    /// - The trigger sits on the hot path of every advance and settle batch, so it does the least
    ///   it can: one settings read per statement, nothing more when nothing is enabled, and for each
    ///   qualifying event one primary-key probe of its enrollment (the pinned version, so the step
    ///   key in the payload is the one of the version the event happened on). The payload is built
    ///   when a row is first claimed, and then kept, so every retry posts the same bytes. Measured
    ///   on a busy 2-core machine, per statement of 100 events: 0.8 ms without the trigger, the same
    ///   with event webhooks off, +0.3 ms when on and no event qualifies (an advance batch), +2.2 ms
    ///   when all 100 do (a settle batch with `delivered` on: 22 µs per outbox row and its indexes).
    static let eventWebhooks = Migration(
        version: 12, name: "event_webhooks",
        sql: #"""
            CREATE TABLE seqd.event_webhook_outbox (
                id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                event_id          bigint NOT NULL,
                enrollment_id     bigint NOT NULL,
                type              text NOT NULL CHECK (type IN ('replied', 'bounced', 'opted_out', 'completed',
                                                                'failed', 'stopped', 'delivered')),
                sequence_version  integer,
                occurred_at       timestamptz NOT NULL,
                created_at        timestamptz NOT NULL DEFAULT now(),
                attempts          integer NOT NULL DEFAULT 0,
                next_attempt_at   timestamptz NOT NULL DEFAULT now(),
                delivered_at      timestamptz,
                last_error        text,
                payload           jsonb,
                -- One post per event and type: a `delivered` event that also completes the
                -- enrollment is two posts (types `delivered` and `completed`), each with its own id.
                UNIQUE (event_id, type)
            );
            COMMENT ON TABLE seqd.event_webhook_outbox IS
                'enrollment events to post to event_webhook.url (at least once); id is the webhook''s evt_<id>';
            COMMENT ON COLUMN seqd.event_webhook_outbox.next_attempt_at IS
                'not claimed before this; a claim moves it a lease ahead, so a crashed sender''s rows come back';
            COMMENT ON COLUMN seqd.event_webhook_outbox.payload IS
                'the JSON body, built at the first claim and posted unchanged by every retry';
            -- What the sender claims and `seqd event-webhook status` counts: the rows not delivered.
            CREATE INDEX event_webhook_outbox_due ON seqd.event_webhook_outbox (next_attempt_at, id)
                WHERE delivered_at IS NULL;
            -- Delivered in the last hour, and what `seqd prune` may remove.
            CREATE INDEX event_webhook_outbox_delivered ON seqd.event_webhook_outbox (delivered_at)
                WHERE delivered_at IS NOT NULL;

            -- The webhook type of each new audit event, for the types enabled in
            -- seqd.settings('event_webhook.types'): the new status of a change into a terminal
            -- outcome or `failed`, and `delivered` for the event of that name.
            CREATE FUNCTION seqd.event_webhook_enqueue() RETURNS trigger
            LANGUAGE plpgsql
            SET search_path = pg_catalog, seqd, pg_temp
            AS $$
            DECLARE
                enabled text[];
            BEGIN
                SELECT string_to_array(s.value, ',') INTO enabled FROM seqd.settings s WHERE s.name = 'event_webhook.types';
                IF enabled IS NULL OR cardinality(enabled) = 0 THEN
                    RETURN NULL;
                END IF;
                INSERT INTO seqd.event_webhook_outbox (event_id, enrollment_id, type, sequence_version, occurred_at)
                SELECT n.id, n.enrollment_id, t.type,
                       -- A scalar subquery is always a primary-key probe, whatever the planner
                       -- guesses about the transition table's size.
                       (SELECT e.sequence_version FROM seqd.enrollments e WHERE e.id = n.enrollment_id),
                       n.at
                FROM new_events n
                CROSS JOIN LATERAL (VALUES
                    (CASE WHEN n.to_status IS DISTINCT FROM n.from_status
                               AND n.to_status IN ('replied', 'bounced', 'opted_out', 'completed', 'failed', 'stopped')
                          THEN n.to_status::text END),
                    (CASE WHEN n.event = 'delivered' THEN 'delivered' END)
                ) AS t(type)
                WHERE t.type = ANY (enabled);
                RETURN NULL;
            END $$;
            CREATE TRIGGER enrollment_events_event_webhook
                AFTER INSERT ON seqd.enrollment_events REFERENCING NEW TABLE AS new_events
                FOR EACH STATEMENT EXECUTE FUNCTION seqd.event_webhook_enqueue();

            -- 0006's guard, with `event_webhook.types` joining the send switch among the rows other
            -- roles may write (`seqd run` writes it as the runtime role).
            CREATE OR REPLACE FUNCTION seqd.settings_guard() RETURNS trigger
            LANGUAGE plpgsql
            SET search_path = pg_catalog, seqd, pg_temp
            AS $$
            BEGIN
                IF NOT seqd.acts_as_owner(TG_RELID)
                   AND ((TG_OP <> 'INSERT' AND OLD.name NOT LIKE 'sending.%' AND OLD.name <> 'event_webhook.types')
                        OR (TG_OP <> 'DELETE' AND NEW.name NOT LIKE 'sending.%' AND NEW.name <> 'event_webhook.types')) THEN
                    RAISE EXCEPTION 'seqd.settings: % of % is reserved to the owner', TG_OP, COALESCE(NEW.name, OLD.name)
                        USING ERRCODE = 'insufficient_privilege';
                END IF;
                RETURN COALESCE(NEW, OLD);
            END $$;
            """#)
}
