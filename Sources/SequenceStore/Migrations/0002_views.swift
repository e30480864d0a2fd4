extension Migrations {
    /// Views for the questions operators ask in psql. They resolve step indexes to step keys
    /// through the pinned version's definition.
    static let views = Migration(
        version: 2, name: "views",
        sql: #"""
            -- Each enrollment with its contact, sequence, step key and why it is not moving.
            CREATE VIEW seqd.enrollment_overview AS
            SELECT e.id AS enrollment_id, c.email, s.name AS sequence, e.sequence_version AS version,
                   e.current_step_index AS step_index,
                   COALESCE(v.definition -> 'steps' -> e.current_step_index ->> 'key', '(end)') AS step_key,
                   e.status, e.next_run_at, e.resume_at, e.remaining_wait, e.last_error,
                   CASE
                       WHEN e.status IN ('completed', 'replied', 'opted_out', 'bounced', 'stopped')
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

            -- A funnel per sequence step: how many enrollments entered each step (from the audit
            -- trail), how many sit there now, and how many of its deliveries were sent.
            CREATE VIEW seqd.step_funnel AS
            WITH steps AS (
                SELECT v.sequence_id, v.version, (step.ordinality - 1)::int AS step_index,
                       step.value ->> 'key' AS step_key, step.value ->> 'type' AS step_type
                FROM seqd.sequence_versions v,
                     jsonb_array_elements(v.definition -> 'steps') WITH ORDINALITY AS step
            )
            SELECT s.name AS sequence, st.version, st.step_index, st.step_key, st.step_type,
                   (SELECT count(DISTINCT ev.enrollment_id) FROM seqd.enrollment_events ev
                      JOIN seqd.enrollments e ON e.id = ev.enrollment_id
                     WHERE e.sequence_id = st.sequence_id AND e.sequence_version = st.version
                       AND st.step_index BETWEEN COALESCE(ev.from_step + 1, ev.to_step) AND ev.to_step
                       AND ev.to_step <> COALESCE(ev.from_step, -1)) AS entered,
                   (SELECT count(*) FROM seqd.enrollments e
                     WHERE e.sequence_id = st.sequence_id AND e.sequence_version = st.version
                       AND e.current_step_index = st.step_index AND e.status IN ('active', 'paused', 'failed')) AS here_now,
                   (SELECT count(*) FROM seqd.deliveries d JOIN seqd.enrollments e ON e.id = d.enrollment_id
                     WHERE e.sequence_id = st.sequence_id AND e.sequence_version = st.version
                       AND d.step_key = st.step_key AND d.status = 'sent') AS sent
            FROM steps st JOIN seqd.sequences s ON s.id = st.sequence_id;

            -- Active enrollments with no way forward: not scheduled and no delivery that could move
            -- them, or due for more than five minutes (the daemon is down or far behind).
            CREATE VIEW seqd.stuck_enrollments AS
            SELECT o.*,
                   CASE WHEN o.next_run_at IS NULL THEN 'awaiting a delivery that does not exist or cannot be sent'
                        ELSE 'due for ' || date_trunc('second', now() - o.next_run_at)::text END AS problem
            FROM seqd.enrollment_overview o
            WHERE o.status = 'active'
              AND ((o.next_run_at IS NULL AND NOT EXISTS (
                        SELECT 1 FROM seqd.deliveries d
                        WHERE d.enrollment_id = o.enrollment_id AND d.status IN ('pending', 'sending', 'unknown')))
                   OR o.next_run_at < now() - interval '5 minutes');

            -- Deliveries still marked as being sent after their lease ran out (the rescuer turns
            -- them into 'unknown'; rows here mean no daemon is rescuing).
            CREATE VIEW seqd.expired_leases AS
            SELECT d.id AS delivery_id, d.enrollment_id, d.step_key, d.lease_owner, d.fencing_token,
                   d.lease_expires_at, now() - d.lease_expires_at AS expired_for
            FROM seqd.deliveries d
            WHERE d.status = 'sending' AND d.lease_expires_at < now();

            -- What is about to go out, per sender address and hour.
            CREATE VIEW seqd.upcoming_sends AS
            SELECT d.message ->> 'from_address' AS sender, date_trunc('hour', d.next_attempt_at) AS hour,
                   count(*) AS deliveries
            FROM seqd.deliveries d
            WHERE d.status IN ('pending', 'unknown')
            GROUP BY 1, 2;
            """#)
}
