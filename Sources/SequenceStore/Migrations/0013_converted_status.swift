extension Migrations {
    /// Issue 19: the terminal status `converted` (a goal of `exit_when` was met). Alone in its
    /// file because PostgreSQL does not let a transaction use an enum label it added: the
    /// transition rows, guard, views and indexes that name it are 0014.
    static let convertedStatus = Migration(
        version: 13, name: "converted_status",
        sql: #"""
            ALTER TYPE seqd.enrollment_status ADD VALUE IF NOT EXISTS 'converted';
            """#)
}
