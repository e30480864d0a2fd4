# Shared by Scripts/test and Scripts/demo: install what is missing, run a throwaway PostgreSQL.
# Sourced, not executed.

# Debian packages seqd needs to build and test, and the command or file that proves each is there.
# (python3-aiosmtpd is only for the tests; the demo installs it too, which costs a few seconds once.)
seqd_require_packages() {
    local missing=()
    command -v pg_config >/dev/null 2>&1 && [ -f "$(pg_config --includedir 2>/dev/null)/libpq-fe.h" ] \
        || missing+=(libpq-dev)
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then :; else
        missing+=(postgresql)
    fi
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    pkg-config --exists libcurl 2>/dev/null && [ -f "$(pkg-config --variable=includedir libcurl)/curl/curl.h" ] \
        || missing+=(libcurl4-openssl-dev)
    # The SMTP tests script a real server's faults with aiosmtpd, run by Debian's own python3.
    /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || missing+=(python3-aiosmtpd)
    command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
    # The clock-skew fault test runs a daemon hours off the database's clock.
    command -v faketime >/dev/null 2>&1 || missing+=(faketime)
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "==> installing missing packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" postgresql-contrib >/dev/null
    # Debian's package starts its own cluster on 5432; seqd never uses it.
}

# Runs a command as the cluster's owner: PostgreSQL refuses to run as root.
seqd_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# seqd_start_cluster DIR: initdb + start a cluster in DIR, listening only on a Unix socket in DIR.
# Prints nothing on success; sets SEQD_PG_DIR and SEQD_PG_URL.
seqd_start_cluster() {
    local dir=$1 bindir
    bindir=$(pg_config --bindir)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        seqd_as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
            >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
    fi
    # No TCP listener: the socket lives in DIR, so parallel runs never collide on a port.
    seqd_as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses='' -k $dir -c max_connections=200 -c fsync=${SEQD_PG_FSYNC:-on}" start >/dev/null \
        || { cat "$dir/server.log" >&2; return 1; }
    SEQD_PG_DIR=$dir
    SEQD_PG_URL="postgresql://postgres@/postgres?host=$dir"
    export SEQD_PG_DIR SEQD_PG_URL
}

seqd_stop_cluster() {
    [ -n "${SEQD_PG_DIR:-}" ] && [ -f "$SEQD_PG_DIR/data/postmaster.pid" ] || return 0
    seqd_as_owner "$(pg_config --bindir)/pg_ctl" -D "$SEQD_PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
}
