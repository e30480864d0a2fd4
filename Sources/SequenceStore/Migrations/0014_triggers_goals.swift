extension Migrations {
    /// Issue 19, entry on events and exit on goals.
    ///
    /// - `seqd.events`: what contacts did, as other systems reported it (`POST /v1/events`,
    ///   `seqd event send`). `key` is the sender's idempotency key, unique: a retried event is
    ///   refused by the index and changes nothing. Append-only for every role but the owner
    ///   (`seqd prune` removes events past its horizon). `received_at` is the database clock: goals
    ///   on events (`exit_when: [{ event: meeting_booked }]`) count the events received after the
    ///   enrollment was created, which `events_contact` answers with one index range.
    /// - `enrollments.trigger_event_id` and `event_properties`: the event that enrolled the contact
    ///   and a copy of its properties, which templates read as `{{event.NAME}}`. A copy, not a
    ///   reference, so pruning old events never changes what a live enrollment renders (and no
    ///   foreign key, for the same reason).
    /// - `converted` joins the transition table (from active, paused and failed) and the terminal
    ///   statuses of the update guard, `enrollment_overview` and the funnel, which counts
    ///   conversions per step (`converted`: enrollments that met a goal while at that step).
    /// - The update guard's terminal list is now read from the transition table (a status with no
    ///   way out is terminal), so the next terminal status needs only its rows there.
    /// - Event webhooks (0012) post `converted` like the other outcomes: the outbox's type CHECK
    ///   allows it, and the enqueue trigger now takes any new status other than active and paused
    ///   as the type (the enabled list, which `seqd run` validates, decides what is written).
    static let triggersGoals = Migration(
        version: 14, name: "triggers_goals",
        sql: #"""
            CREATE TABLE seqd.events (
                id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                contact_id   bigint NOT NULL REFERENCES seqd.contacts (id),
                name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
                key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
                properties   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(properties) = 'object'),
                occurred_at  timestamptz,
                received_at  timestamptz NOT NULL DEFAULT now(),
                source       text NOT NULL,
                CONSTRAINT events_key UNIQUE (key)
            );
            COMMENT ON TABLE seqd.events IS
                'events other systems reported for contacts; key is their idempotency key (a repeat changes nothing)';
            CREATE INDEX events_contact ON seqd.events (contact_id, received_at);
            -- What `seqd prune` removes, oldest first.
            CREATE INDEX events_received ON seqd.events (received_at);
            CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON seqd.events
                FOR EACH STATEMENT EXECUTE FUNCTION seqd.append_only();

            ALTER TABLE seqd.enrollments ADD COLUMN trigger_event_id bigint;
            ALTER TABLE seqd.enrollments ADD COLUMN event_properties jsonb;
            COMMENT ON COLUMN seqd.enrollments.event_properties IS
                'properties of the event that enrolled the contact (trigger), for {{event.NAME}} in templates';

            INSERT INTO seqd.enrollment_transitions (from_status, to_status) VALUES
                ('active', 'converted'), ('paused', 'converted'), ('failed', 'converted');

            -- 0007's guard; a terminal status is now one with no way out in the transition table.
            CREATE OR REPLACE FUNCTION seqd.enrollments_guard_update() RETURNS trigger
            LANGUAGE plpgsql
            SET search_path = pg_catalog, seqd, pg_temp
            SET enable_nestloop = off
            AS $$
            DECLARE
                event  text := COALESCE(seqd.audit_setting('seqd.event'), 'manual_update');
                actor  text := COALESCE(seqd.audit_setting('seqd.actor'), session_user);
                reason text := seqd.audit_setting('seqd.reason');
                detail jsonb := seqd.audit_setting('seqd.detail')::jsonb;
                bad    record;
            BEGIN
                WITH changes AS MATERIALIZED (
                    SELECT o.id, o.status AS from_status, n.status AS to_status,
                           o.current_step_index AS from_step, n.current_step_index AS to_step,
                           o.sequence_version AS from_version, n.sequence_version AS to_version
                    FROM old_rows o JOIN new_rows n ON n.id = o.id
                    WHERE o.status <> n.status
                       OR o.current_step_index <> n.current_step_index
                       OR o.sequence_version <> n.sequence_version
                ), audit AS (
                    INSERT INTO seqd.enrollment_events
                        (enrollment_id, event, from_status, to_status, from_step, to_step, actor, reason, detail)
                    SELECT c.id, event, c.from_status, c.to_status, c.from_step, c.to_step, actor, reason,
                           CASE WHEN c.from_version <> c.to_version
                                THEN COALESCE(detail, '{}')
                                     || jsonb_build_object('from_version', c.from_version, 'to_version', c.to_version)
                                ELSE detail END
                    FROM changes c
                )
                SELECT c.id, c.from_status, c.to_status, c.from_status <> c.to_status AS invalid_transition
                INTO bad
                FROM changes c
                WHERE (c.from_status <> c.to_status
                       AND NOT EXISTS (SELECT 1 FROM seqd.enrollment_transitions t
                                       WHERE t.from_status = c.from_status AND t.to_status = c.to_status))
                   OR (NOT EXISTS (SELECT 1 FROM seqd.enrollment_transitions t WHERE t.from_status = c.from_status)
                       AND (c.from_step <> c.to_step OR c.from_version <> c.to_version))
                ORDER BY invalid_transition DESC, c.id
                LIMIT 1;
                IF NOT FOUND THEN
                    RETURN NULL;
                ELSIF bad.invalid_transition THEN
                    RAISE EXCEPTION 'invalid enrollment transition: enrollment % cannot go from % to %',
                        bad.id, bad.from_status, bad.to_status
                        USING ERRCODE = 'SQ001',
                              HINT = 'allowed changes are listed in seqd.enrollment_transitions';
                ELSE
                    RAISE EXCEPTION 'enrollment % is % and can no longer change step or version',
                        bad.id, bad.from_status
                        USING ERRCODE = 'SQ001';
                END IF;
            END $$;

            -- 0002's view with `converted` among the finished statuses (same columns).
            CREATE OR REPLACE VIEW seqd.enrollment_overview AS
            SELECT e.id AS enrollment_id, c.email, s.name AS sequence, e.sequence_version AS version,
                   e.current_step_index AS step_index,
                   COALESCE(v.definition -> 'steps' -> e.current_step_index ->> 'key', '(end)') AS step_key,
                   e.status, e.next_run_at, e.resume_at, e.remaining_wait, e.last_error,
                   CASE
                       WHEN e.status IN ('completed', 'replied', 'opted_out', 'bounced', 'stopped', 'converted')
                           THEN 'finished: ' || e.status
                       WHEN e.status = 'failed' THEN 'failed: ' || COALESCE(e.last_error, 'unknown error')
                       WHEN e.status = 'paused' AND e.resume_at IS NOT NULL
                           THEN 'paused until ' || to_char(e.resume_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                       WHEN e.status = 'paused' THEN 'paused'
                       WHEN s.paused_at IS NOT NULL THEN 'sequence paused'
                       WHEN e.next_run_at IS NULL THEN 'awaiting delivery'
                       WHEN e.next_run_at > now()
                           THEN 'waiting until ' || to_char(e.next_run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                       ELSE 'due'
                   END AS blocked_reason,
                   e.created_at, e.updated_at
            FROM seqd.enrollments e
            JOIN seqd.contacts c ON c.id = e.contact_id
            JOIN seqd.sequences s ON s.id = e.sequence_id
            JOIN seqd.sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.sequence_version;

            -- The funnel's conversions per step: one index range per sequence, read once per
            -- step row of the view (converted enrollments are a minority of a sequence's).
            CREATE INDEX enrollments_converted ON seqd.enrollments (sequence_id, sequence_version, current_step_index)
                WHERE status = 'converted';
            ALTER TABLE seqd.event_webhook_outbox DROP CONSTRAINT event_webhook_outbox_type_check;
            ALTER TABLE seqd.event_webhook_outbox ADD CONSTRAINT event_webhook_outbox_type_check
                CHECK (type IN ('replied', 'bounced', 'opted_out', 'completed', 'failed', 'stopped', 'converted', 'delivered'));
            CREATE OR REPLACE FUNCTION seqd.event_webhook_enqueue() RETURNS trigger
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
                       (SELECT e.sequence_version FROM seqd.enrollments e WHERE e.id = n.enrollment_id),
                       n.at
                FROM new_events n
                CROSS JOIN LATERAL (VALUES
                    (CASE WHEN n.to_status IS DISTINCT FROM n.from_status AND n.to_status NOT IN ('active', 'paused')
                          THEN n.to_status::text END),
                    (CASE WHEN n.event = 'delivered' THEN 'delivered' END)
                ) AS t(type)
                WHERE t.type = ANY (enabled);
                RETURN NULL;
            END $$;

            CREATE OR REPLACE VIEW seqd.step_funnel AS
            SELECT s.name AS sequence, f.version, f.step_index, f.step_key, f.step_type, f.entered, f.here_now, f.sent,
                   (SELECT count(*) FROM seqd.enrollments e
                    WHERE e.status = 'converted' AND e.sequence_id = s.id AND e.sequence_version = f.version
                      AND e.current_step_index = f.step_index) AS converted
            FROM seqd.sequences s
            CROSS JOIN LATERAL seqd.step_funnel_counts(s.id) AS f;
            """#)
}
