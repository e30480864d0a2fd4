extension Migrations {
    /// Issue 21: the audit trail's index carries the columns `seqd check` compares (each event's
    /// from and to status and step), so its two passes over a million enrollments' history read
    /// the index alone, in order, instead of fetching every event from the heap (contiguous-history
    /// 9.6 s → 5.0 s on a busy 2-core machine, audited-state 15 s → 5.3 s). It replaces
    /// `enrollment_events_enrollment` (same key) in 0009, so each audit insert still updates one
    /// index. Built concurrently: the daemon keeps writing events meanwhile. If the build fails
    /// (`lock_timeout` behind a long transaction), PostgreSQL leaves an invalid index of that name:
    /// `DROP INDEX seqd.enrollment_events_history` and run `seqd migrate` again.
    static let historyIndex = Migration(
        version: 8, name: "history_index",
        sql: """
            -- seqd:no-transaction
            CREATE INDEX CONCURRENTLY enrollment_events_history ON seqd.enrollment_events
                (enrollment_id, id) INCLUDE (from_status, from_step, to_status, to_step);
            """)

    /// Issue 21: drops the index 0008's replaces (same key, fewer columns).
    static let dropEventsIndex = Migration(
        version: 9, name: "drop_events_index",
        sql: """
            -- seqd:no-transaction
            DROP INDEX CONCURRENTLY IF EXISTS seqd.enrollment_events_enrollment;
            """)
}
