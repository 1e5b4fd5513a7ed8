#!/usr/bin/env bash
# PostgreSQL for the test suite: answer on 127.0.0.1:5432 as user postgres with trust
# authentication, as tests/support/postgres.py expects.
#
# Nothing is done when a server already answers there (a developer's own, or one a
# previous run started). Otherwise, as root: Debian's `postgresql` is installed when
# missing, its first cluster is made to listen on 127.0.0.1:5432 and to trust loopback
# connections (a throw-away server on a test machine: never do this on a shared host),
# and started. Not root: say what is missing and leave it to the suite, which skips
# PostgreSQL's tests with the reason (or fails them when CI=true).
set -euo pipefail

answers() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }

if answers; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "postgres.sh: nothing answers on 127.0.0.1:5432 and only root may install and start PostgreSQL here;" \
         "start one with trust auth for user postgres, or set SSHTRAIL_TEST_POSTGRES" >&2
    exit 0
fi

if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    echo "postgres.sh: installing Debian's postgresql" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib >/dev/null
fi

version=$(ls /etc/postgresql | sort -n | tail -n 1)
cluster=$(ls "/etc/postgresql/$version" | head -n 1)
conf=/etc/postgresql/$version/$cluster

# Loopback only, the port the suite expects, and no fsync: this server holds nothing
# that outlives a test run.
cat >"$conf/conf.d/sshtrail-tests.conf" <<'CONF'
listen_addresses = '127.0.0.1'
port = 5432
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
CONF

marker="# sshtrail tests: trust loopback"
if ! grep -qF "$marker" "$conf/pg_hba.conf"; then
    # pg_hba.conf is read top down and the first matching line wins: put trust first.
    {
        echo "$marker"
        echo "host all all 127.0.0.1/32 trust"
        echo "host all all ::1/128 trust"
        cat "$conf/pg_hba.conf"
    } >"$conf/pg_hba.conf.new"
    chown --reference="$conf/pg_hba.conf" "$conf/pg_hba.conf.new"
    chmod --reference="$conf/pg_hba.conf" "$conf/pg_hba.conf.new"
    mv "$conf/pg_hba.conf.new" "$conf/pg_hba.conf"
fi

if pg_ctlcluster "$version" "$cluster" status >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" restart
else
    pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start
fi

for _ in $(seq 1 60); do
    if answers && pg_isready -q -h 127.0.0.1 -p 5432; then
        echo "postgres.sh: PostgreSQL $version answers on 127.0.0.1:5432" >&2
        exit 0
    fi
    sleep 0.5
done
echo "postgres.sh: PostgreSQL $version did not answer on 127.0.0.1:5432 within 30 s;" \
     "see /var/log/postgresql/postgresql-$version-$cluster.log" >&2
exit 1
