extension Migrations {
    /// `seqd.is_suppressed` as two probes of the primary key instead of one `OR`: the planner
    /// turned the `OR` into a bitmap scan per row, whose set-up cost 12 µs a row in the claims
    /// that check every row (1.8 ms against 0.55 ms for a claim of 100). Same answer.
    static let suppressionCheck = Migration(
        version: 5, name: "suppression_check",
        sql: #"""
            CREATE OR REPLACE FUNCTION seqd.is_suppressed(address text) RETURNS boolean
            LANGUAGE sql STABLE PARALLEL SAFE
            AS $$ SELECT EXISTS (SELECT 1 FROM seqd.suppressions s WHERE s.email = lower(address))
                      OR EXISTS (SELECT 1 FROM seqd.suppressions s WHERE s.email = seqd.address_hash(address)) $$;
            """#)
}
