extension Migrations {
    /// Issue 19, variants, clicks and results per step.
    ///
    /// - `deliveries.variant`: the key of the A/B variant an email step rendered for this
    ///   enrollment (NULL for a step without variants). Chosen when the step runs, from the
    ///   enrollment and the step alone, so a retry or another replica renders the same one.
    /// - `deliveries.credited_outcome`: the terminal outcome (`replied`, `bounced`, `opted_out`,
    ///   `converted`) credited to this email: the enrollment's last email sent when it ended, the
    ///   convention of the tools seqd is compared with. Written by a statement trigger on the audit
    ///   trail in the transaction that ended the enrollment, so the report reads it instead of
    ///   re-deriving history, and it never changes once written. Not named `outcome`: operators
    ///   join deliveries with `delivery_attempts`, whose `outcome` their queries name unqualified.
    /// - `deliveries.sequence_id`: the enrollment's sequence, copied when the delivery is written,
    ///   so a sequence's results are one index-only scan of `deliveries_results` instead of a join
    ///   of every enrollment with every delivery (2.2 s at a million enrollments; issue 19 asks
    ///   under a second). Existing rows are filled here (one pass over the deliveries). A replica
    ///   of an older binary still writes NULL during a rolling upgrade; `step_results` reads those
    ///   few rows through the enrollment, by the partial index `deliveries_sequence_unknown`.
    /// - `seqd.clicks`: one row per hit on a tracked link (`/c/<token>`). `scanner` names why a
    ///   hit was taken for a link scanner's (`head`, `too_soon`, `decoy`); NULL is a person. The
    ///   URL is kept as clicked (the signed one). Deliveries are never deleted (`seqd prune` only
    ///   clears their message), so clicks live as long as their delivery.
    /// - `seqd.step_results(sequence_id, since)`: per step key and variant, the emails sent since
    ///   `since` and what became of them; `seqd.step_results` (the view) is every sequence, all
    ///   time. `seqd report` reads the function.
    static let variantsClicksResults = Migration(
        version: 15, name: "variants_clicks_results",
        sql: #"""
            ALTER TABLE seqd.deliveries ADD COLUMN variant text CHECK (length(variant) BETWEEN 1 AND 64);
            ALTER TABLE seqd.deliveries ADD COLUMN credited_outcome seqd.enrollment_status
                CHECK (credited_outcome IN ('replied', 'bounced', 'opted_out', 'converted'));
            ALTER TABLE seqd.deliveries ADD COLUMN sequence_id bigint;
            UPDATE seqd.deliveries d SET sequence_id = e.sequence_id FROM seqd.enrollments e WHERE e.id = d.enrollment_id;
            CREATE INDEX deliveries_results ON seqd.deliveries (sequence_id, step_key, variant) INCLUDE (credited_outcome, sent_at, id)
                WHERE kind = 'email' AND status = 'sent';
            CREATE INDEX deliveries_sequence_unknown ON seqd.deliveries (enrollment_id) WHERE sequence_id IS NULL;
            COMMENT ON COLUMN seqd.deliveries.sequence_id IS
                'the enrollment''s sequence, for results per sequence (NULL only from binaries before migration 15)';
            COMMENT ON COLUMN seqd.deliveries.variant IS 'the A/B variant key this email rendered (NULL: the step has none)';
            COMMENT ON COLUMN seqd.deliveries.credited_outcome IS
                'the outcome credited to this email: its enrollment ended so while it was the last email sent';

            CREATE TABLE seqd.clicks (
                id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                delivery_id  bigint NOT NULL REFERENCES seqd.deliveries (id),
                url          text NOT NULL CHECK (length(url) BETWEEN 1 AND 4096),
                scanner      text CHECK (scanner IN ('head', 'too_soon', 'decoy')),
                clicked_at   timestamptz NOT NULL DEFAULT now(),
                -- The delivery's, copied by clicks_fill when the click is recorded, so results per
                -- step and variant read the clicks alone (clicks_results).
                sequence_id  bigint,
                step_key     text,
                variant      text,
                sent_at      timestamptz
            );
            COMMENT ON TABLE seqd.clicks IS
                'hits on tracked links; scanner names why a hit was taken for a link scanner (NULL: a person)';
            CREATE INDEX clicks_delivery ON seqd.clicks (delivery_id);
            CREATE INDEX clicks_results ON seqd.clicks (sequence_id, step_key, variant, delivery_id) INCLUDE (scanner, sent_at);

            CREATE FUNCTION seqd.clicks_fill() RETURNS trigger
            LANGUAGE plpgsql
            SET search_path = pg_catalog, seqd, pg_temp
            AS $$
            BEGIN
                SELECT COALESCE(d.sequence_id, e.sequence_id), d.step_key, d.variant, d.sent_at
                INTO NEW.sequence_id, NEW.step_key, NEW.variant, NEW.sent_at
                FROM seqd.deliveries d JOIN seqd.enrollments e ON e.id = d.enrollment_id
                WHERE d.id = NEW.delivery_id;
                RETURN NEW;
            END $$;
            CREATE TRIGGER clicks_fill BEFORE INSERT ON seqd.clicks FOR EACH ROW EXECUTE FUNCTION seqd.clicks_fill();

            -- Credits each outcome to the enrollment's last email sent. One primary-key probe on
            -- the unique (enrollment_id, step_key) index per ended enrollment; nothing for the
            -- audit events of an advance, which keep their status.
            CREATE FUNCTION seqd.credit_outcomes() RETURNS trigger
            LANGUAGE plpgsql
            SET search_path = pg_catalog, seqd, pg_temp
            AS $$
            BEGIN
                UPDATE seqd.deliveries d SET credited_outcome = n.to_status
                FROM new_events n
                WHERE n.to_status IN ('replied', 'bounced', 'opted_out', 'converted')
                  AND n.to_status IS DISTINCT FROM n.from_status
                  AND d.id = (SELECT l.id FROM seqd.deliveries l
                              WHERE l.enrollment_id = n.enrollment_id AND l.kind = 'email' AND l.status = 'sent'
                              ORDER BY l.sent_at DESC, l.id DESC LIMIT 1)
                  AND d.credited_outcome IS NULL;
                RETURN NULL;
            END $$;
            CREATE TRIGGER enrollment_events_credit_outcome
                AFTER INSERT ON seqd.enrollment_events REFERENCING NEW TABLE AS new_events
                FOR EACH STATEMENT EXECUTE FUNCTION seqd.credit_outcomes();

            -- Emails of one sequence sent since `since`, per step and variant, with the outcomes
            -- credited to them (one index-only scan of deliveries_results), and the emails clicked
            -- by a person or by a scanner (one of clicks_results). Deliveries an older binary wrote
            -- without sequence_id are found through their enrollment.
            CREATE FUNCTION seqd.step_results(sequence_id bigint, since timestamptz)
            RETURNS TABLE (step_key text, variant text, sent bigint, replied bigint, bounced bigint,
                           opted_out bigint, converted bigint, clicked bigint, scanner_clicked bigint)
            LANGUAGE plpgsql STABLE
            SET search_path = pg_catalog, seqd, pg_temp
            -- Compiling this plan took psql sessions 3 s of JIT for a 0.7 s query (seqd's own
            -- sessions never JIT); the function says so for every caller.
            SET jit = off
            AS $$
            BEGIN
                -- PL/pgSQL, not SQL: its statements are planned for the arguments given, so the
                -- index condition on sequence_id and the since filter are seen (a SQL function's
                -- generic plan took 3 s at a million enrollments instead of 0.7 s).
                RETURN QUERY
                WITH sent AS (
                    SELECT d.step_key, d.variant, count(*) AS sent,
                           count(*) FILTER (WHERE d.credited_outcome = 'replied') AS replied,
                           count(*) FILTER (WHERE d.credited_outcome = 'bounced') AS bounced,
                           count(*) FILTER (WHERE d.credited_outcome = 'opted_out') AS opted_out,
                           count(*) FILTER (WHERE d.credited_outcome = 'converted') AS converted
                    FROM (SELECT d.step_key, d.variant, d.credited_outcome
                          FROM seqd.deliveries d
                          WHERE d.sequence_id = step_results.sequence_id
                            AND d.kind = 'email' AND d.status = 'sent' AND (step_results.since = '-infinity' OR d.sent_at >= step_results.since)
                          UNION ALL
                          SELECT d.step_key, d.variant, d.credited_outcome
                          FROM seqd.deliveries d JOIN seqd.enrollments e ON e.id = d.enrollment_id
                          WHERE d.sequence_id IS NULL AND e.sequence_id = step_results.sequence_id
                            AND d.kind = 'email' AND d.status = 'sent' AND (step_results.since = '-infinity' OR d.sent_at >= step_results.since)) d
                    GROUP BY d.step_key, d.variant
                ), clicked AS (
                    SELECT c.step_key, c.variant,
                           count(DISTINCT c.delivery_id) FILTER (WHERE c.scanner IS NULL) AS clicked,
                           count(DISTINCT c.delivery_id) FILTER (WHERE c.scanner IS NOT NULL) AS scanner_clicked
                    FROM seqd.clicks c
                    WHERE c.sequence_id = step_results.sequence_id
                      AND (step_results.since = '-infinity' OR c.sent_at >= step_results.since)
                    GROUP BY c.step_key, c.variant
                )
                SELECT s.step_key, s.variant, s.sent, s.replied, s.bounced, s.opted_out, s.converted,
                       COALESCE(c.clicked, 0), COALESCE(c.scanner_clicked, 0)
                FROM sent s
                LEFT JOIN clicked c ON c.step_key = s.step_key AND c.variant IS NOT DISTINCT FROM s.variant;
            END $$;

            CREATE VIEW seqd.step_results AS
            SELECT s.name AS sequence, r.*
            FROM seqd.sequences s
            CROSS JOIN LATERAL seqd.step_results(s.id, '-infinity') AS r;

            -- Erasure also removes the contact's clicks: their URLs may carry personal data (a
            -- token, an address in a query). Migration 0006's body otherwise unchanged; the
            -- search_path is restated because CREATE OR REPLACE resets what 0006's loop set.
            CREATE OR REPLACE FUNCTION seqd.erase_contact_history(contact bigint, address text, replacement text) RETURNS void
            LANGUAGE plpgsql SECURITY DEFINER
            SET search_path = pg_catalog, seqd, pg_temp
            AS $$
            BEGIN
                UPDATE seqd.suppressions SET email = seqd.address_hash(address),
                       reason = CASE WHEN source = 'erase' THEN 'erased' ELSE reason END
                WHERE email = lower(address);
                UPDATE seqd.delivery_attempts a SET reply = NULL FROM seqd.deliveries d
                WHERE a.delivery_id = d.id AND d.contact_id = contact AND a.reply IS NOT NULL;
                UPDATE seqd.signals SET detail = NULL WHERE contact_id = contact AND detail IS NOT NULL;
                UPDATE seqd.deliveries SET last_error = seqd.scrub(last_error, address, replacement)
                WHERE contact_id = contact AND strpos(lower(last_error), lower(address)) > 0;
                UPDATE seqd.enrollments SET last_error = seqd.scrub(last_error, address, replacement)
                WHERE contact_id = contact AND strpos(lower(last_error), lower(address)) > 0;
                UPDATE seqd.enrollment_events v
                SET reason = seqd.scrub(v.reason, address, replacement),
                    detail = seqd.scrub(v.detail::text, address, replacement)::jsonb
                FROM seqd.enrollments e
                WHERE v.enrollment_id = e.id AND e.contact_id = contact
                  AND (strpos(lower(v.reason), lower(address)) > 0 OR strpos(lower(v.detail::text), lower(address)) > 0);
                DELETE FROM seqd.clicks k USING seqd.deliveries d
                WHERE k.delivery_id = d.id AND d.contact_id = contact;
            END $$;
            """#)
}
