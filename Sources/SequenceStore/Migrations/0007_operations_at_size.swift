extension Migrations {
    /// Issue 21, operations at production size (invariant 10): bulk changes in time linear in the
    /// rows they change, and the operator's views answering in under a second at a million
    /// enrollments. Self-contained (each object is replaced whole, grants on views are kept by
    /// `CREATE OR REPLACE`), so it can be renumbered.
    ///
    /// - The update guard and audit trigger. 0001's looked for a bad row with `old_rows JOIN
    ///   new_rows … LIMIT 1`; the LIMIT made the planner pick a nested loop over the two transition
    ///   tables (cheap to start, and it expects to stop early), and since a valid statement has no
    ///   bad row it ran to the end: quadratic, 8.4 s for 10,000 rows and 32.5 s for 20,000. Now old
    ///   and new rows are joined once (a MATERIALIZED CTE that both the audit insert and the check
    ///   read), and the function runs with `enable_nestloop = off`, so that join is a hash join (or
    ///   a merge join) whatever the estimates say. Same checks, same messages, one event per change;
    ///   the audit settings are read once per statement instead of once per row.
    /// - Statistics on (status, next_run_at): most rows without a `next_run_at` are finished, few
    ///   are active. Without them the planner took "active and unscheduled" for a quarter of the
    ///   table and answered `stuck_enrollments` and `seqd check`'s way-forward by hashing every
    ///   pending delivery (1.5 s at a million); with them it probes the few rows' deliveries.
    /// - `stuck_enrollments` as the union of its two cases, so each uses its index (the `OR` of an
    ///   unscheduled and an overdue row could use neither).
    /// - `step_funnel` from one grouped read of the sequence's enrollments, instead of
    ///   a `count(DISTINCT)` over the audit trail and a join of all deliveries per step: 13.6 s for
    ///   one sequence of 200,000 enrollments (of a million) on a busy 2-core machine. See the view.
    static let operationsAtSize = Migration(
        version: 7, name: "operations_at_size",
        sql: #"""
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
                -- The audit insert runs to completion whatever the SELECT finds; a RAISE below
                -- undoes it with the rest of the statement.
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
                -- Only bad rows are sorted (normally none): an invalid transition is reported
                -- before a terminal enrollment's change of step or version, as 0001 did.
                SELECT c.id, c.from_status, c.to_status, c.from_status <> c.to_status AS invalid_transition
                INTO bad
                FROM changes c
                WHERE (c.from_status <> c.to_status
                       AND NOT EXISTS (SELECT 1 FROM seqd.enrollment_transitions t
                                       WHERE t.from_status = c.from_status AND t.to_status = c.to_status))
                   OR (c.from_status IN ('completed', 'replied', 'opted_out', 'bounced', 'stopped')
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

            CREATE STATISTICS seqd.enrollments_status_schedule (mcv) ON status, next_run_at FROM seqd.enrollments;
            ANALYZE seqd.enrollments;

            -- Active enrollments with no way forward: not scheduled and no delivery that could move
            -- them, or due for more than five minutes (the daemon is down or far behind).
            CREATE OR REPLACE VIEW seqd.stuck_enrollments AS
            SELECT o.*, 'awaiting a delivery that does not exist or cannot be sent'::text AS problem
            FROM seqd.enrollment_overview o
            WHERE o.status = 'active' AND o.next_run_at IS NULL
              AND NOT EXISTS (SELECT 1 FROM seqd.deliveries d
                              WHERE d.enrollment_id = o.enrollment_id AND d.status IN ('pending', 'sending', 'unknown'))
            UNION ALL
            SELECT o.*, 'due for ' || date_trunc('second', now() - o.next_run_at)::text AS problem
            FROM seqd.enrollment_overview o
            WHERE o.status = 'active' AND o.next_run_at < now() - interval '5 minutes';

            -- A sequence's funnel, per version and step, from one grouped read of its enrollments.
            -- Steps only move forward (branches jump ahead, each step runs at most once), so:
            --   entered:  enrollments pinned to the version at the step or past it (a branch's
            --             skipped steps count, as they did when this was read from the audit trail);
            --   here_now: live (active, paused, failed) enrollments at the step;
            --   sent:     for an email or webhook step, enrollments past it: a step that sends is
            --             passed only once its delivery was sent. Enrollments placed past it by
            --             `seqd sequence migrate` count too.
            -- A function, so that it runs once per sequence and not once per step whatever the plan.
            CREATE FUNCTION seqd.step_funnel_counts(sequence_id bigint)
            RETURNS TABLE (version integer, step_index integer, step_key text, step_type text, entered bigint,
                           here_now bigint, sent bigint)
            LANGUAGE sql STABLE
            SET search_path = pg_catalog, seqd, pg_temp
            AS $$
                WITH at_step AS MATERIALIZED (
                    SELECT e.sequence_version AS version, e.current_step_index AS step_index, count(*) AS n,
                           count(*) FILTER (WHERE e.status IN ('active', 'paused', 'failed')) AS live
                    FROM seqd.enrollments e
                    WHERE e.sequence_id = step_funnel_counts.sequence_id
                    GROUP BY 1, 2
                )
                SELECT v.version, (st.ordinality - 1)::integer, st.value ->> 'key', st.value ->> 'type',
                       COALESCE((SELECT sum(a.n) FROM at_step a
                                 WHERE a.version = v.version AND a.step_index >= st.ordinality - 1), 0)::bigint,
                       COALESCE((SELECT a.live FROM at_step a
                                 WHERE a.version = v.version AND a.step_index = st.ordinality - 1), 0)::bigint,
                       CASE WHEN st.value ->> 'type' IN ('email', 'webhook')
                            THEN COALESCE((SELECT sum(a.n) FROM at_step a
                                           WHERE a.version = v.version AND a.step_index > st.ordinality - 1), 0)
                            ELSE 0 END::bigint
                FROM seqd.sequence_versions v, jsonb_array_elements(v.definition -> 'steps') WITH ORDINALITY AS st
                WHERE v.sequence_id = step_funnel_counts.sequence_id
            $$;

            -- A funnel per sequence step: how many enrollments entered each step, how many sit
            -- there now, and how many were sent its email (see seqd.step_funnel_counts).
            CREATE OR REPLACE VIEW seqd.step_funnel AS
            SELECT s.name AS sequence, f.version, f.step_index, f.step_key, f.step_type, f.entered, f.here_now, f.sent
            FROM seqd.sequences s
            CROSS JOIN LATERAL seqd.step_funnel_counts(s.id) AS f;
            """#)
}
