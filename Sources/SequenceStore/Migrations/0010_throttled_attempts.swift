extension Migrations {
    /// `throttled` joins the attempt outcomes: a relay that asks us to slow down (SMTP 421,
    /// 454 4.7.0; HTTP 429) refused nothing about the message, so the attempt is recorded as such
    /// and spends none of the delivery's attempts. A binary that writes it needs this schema, so
    /// `minimumVersion` moves to 10.
    static let throttledAttempts = Migration(
        version: 10, name: "throttled_attempts",
        sql: #"""
            ALTER TABLE seqd.delivery_attempts DROP CONSTRAINT IF EXISTS delivery_attempts_outcome_check;
            ALTER TABLE seqd.delivery_attempts ADD CONSTRAINT delivery_attempts_outcome_check
                CHECK (outcome IN ('sent', 'temporary_failure', 'permanent_failure', 'bounce', 'transport_fault',
                                   'throttled', 'unknown', 'skipped'));
            """#)
}
