extension Migrations {
    /// Issue 19, variants, clicks and results per step.
    ///
    /// - `deliveries.variant`: the key of the A/B variant an email step rendered for this
    ///   enrollment (NULL for a step without variants). Chosen when the step runs, from the
    ///   enrollment and the step alone, so a retry or another replica renders the same one.
    /// - `deliveries.outcome`: the terminal outcome (`replied`, `bounced`, `opted_out`,
    ///   `converted`) credited to this email: the enrollment's last email sent when it ended, the
    ///   convention of the tools seqd is compared with. Written by a statement trigger on the audit
    ///   trail in the transaction that ended the enrollment, so the report reads it instead of
    ///   re-deriving history, and it never changes once written.
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
            ALTER TABLE seqd.deliveries ADD COLUMN outcome seqd.enrollment_status
                CHECK (outcome IN ('replied', 'bounced', 'opted_out', 'converted'));
            COMMENT ON COLUMN seqd.deliveries.variant IS 'the A/B variant key this email rendered (NULL: the step has none)';
            COMMENT ON COLUMN seqd.deliveries.outcome IS
                'the outcome credited to this email: its enrollment ended so while it was the last email sent';

            CREATE TABLE seqd.clicks (
                id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                delivery_id  bigint NOT NULL REFERENCES seqd.deliveries (id),
                url          text NOT NULL CHECK (length(url) BETWEEN 1 AND 4096),
                scanner      text CHECK (scanner IN ('head', 'too_soon', 'decoy')),
                clicked_at   timestamptz NOT NULL DEFAULT now()
            );
            COMMENT ON TABLE seqd.clicks IS
                'hits on tracked links; scanner names why a hit was taken for a link scanner (NULL: a person)';
            CREATE INDEX clicks_delivery ON seqd.clicks (delivery_id);

            -- Credits each outcome to the enrollment's last email sent. One primary-key probe on
            -- the unique (enrollment_id, step_key) index per ended enrollment; nothing for the
            -- audit events of an advance, which keep their status.
            CREATE FUNCTION seqd.credit_outcomes() RETURNS trigger
            LANGUAGE plpgsql
            SET search_path = pg_catalog, seqd, pg_temp
            AS $$
            BEGIN
                UPDATE seqd.deliveries d SET outcome = n.to_status
                FROM new_events n
                WHERE n.to_status IN ('replied', 'bounced', 'opted_out', 'converted')
                  AND n.to_status IS DISTINCT FROM n.from_status
                  AND d.id = (SELECT l.id FROM seqd.deliveries l
                              WHERE l.enrollment_id = n.enrollment_id AND l.kind = 'email' AND l.status = 'sent'
                              ORDER BY l.sent_at DESC, l.id DESC LIMIT 1)
                  AND d.outcome IS NULL;
                RETURN NULL;
            END $$;
            CREATE TRIGGER enrollment_events_credit_outcome
                AFTER INSERT ON seqd.enrollment_events REFERENCING NEW TABLE AS new_events
                FOR EACH STATEMENT EXECUTE FUNCTION seqd.credit_outcomes();

            -- Emails of one sequence sent since `since`, per step and variant, with the outcomes
            -- credited to them and the deliveries clicked by a person or by a scanner.
            CREATE FUNCTION seqd.step_results(sequence_id bigint, since timestamptz)
            RETURNS TABLE (step_key text, variant text, sent bigint, replied bigint, bounced bigint,
                           opted_out bigint, converted bigint, clicked bigint, scanner_clicked bigint)
            LANGUAGE sql STABLE
            SET search_path = pg_catalog, seqd, pg_temp
            AS $$
                SELECT d.step_key, d.variant, count(*),
                       count(*) FILTER (WHERE d.outcome = 'replied'),
                       count(*) FILTER (WHERE d.outcome = 'bounced'),
                       count(*) FILTER (WHERE d.outcome = 'opted_out'),
                       count(*) FILTER (WHERE d.outcome = 'converted'),
                       count(*) FILTER (WHERE k.human),
                       count(*) FILTER (WHERE k.scanner)
                FROM seqd.enrollments e
                JOIN seqd.deliveries d ON d.enrollment_id = e.id
                LEFT JOIN (SELECT c.delivery_id, bool_or(c.scanner IS NULL) AS human, bool_or(c.scanner IS NOT NULL) AS scanner
                           FROM seqd.clicks c GROUP BY c.delivery_id) k ON k.delivery_id = d.id
                WHERE e.sequence_id = step_results.sequence_id
                  AND d.kind = 'email' AND d.status = 'sent' AND d.sent_at >= step_results.since
                GROUP BY d.step_key, d.variant
            $$;

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
