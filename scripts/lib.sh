# Shared helpers for the scripts in this folder. Source it; do not run it.
# Every step prints what it does, so a long run is never silent.

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
warn() { printf '\033[33mwarning:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# apt-get install, updating the package lists once per run.
APT_UPDATED=
apt_install() {
    command -v apt-get >/dev/null || die "apt-get is not available to install: $*"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    if [ -z "$APT_UPDATED" ]; then
        say "apt-get update"
        $sudo apt-get update -qq || warn "apt-get update failed; trying the cached lists"
        APT_UPDATED=1
    fi
    say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

# Makes sure PostgreSQL answers on 127.0.0.1:5432 (trust auth, user postgres) with a `test`
# database, installing and starting it when needed.
ensure_postgres() {
    if ! command -v pg_ctlcluster >/dev/null && ! command -v pg_isready >/dev/null; then
        apt_install postgresql postgresql-client
    fi
    if ! pg_up; then
        say "starting PostgreSQL"
        local version
        version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
        [ -n "$version" ] || die "PostgreSQL is installed but has no cluster in /etc/postgresql"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        for _ in $(seq 1 30); do pg_up && break; sleep 1; done
        pg_up || die "PostgreSQL did not start"
    fi
    if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1" >/dev/null 2>&1; then
        die "PostgreSQL answers but user postgres cannot log in over TCP (trust auth expected)"
    fi
    if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname='test'" | grep -q 1; then
        say "creating database test"
        psql -h 127.0.0.1 -U postgres -d postgres -qc "create database test"
    fi
}

# Makes sure Redis answers on 127.0.0.1:6379, installing and starting it when needed.
ensure_redis() {
    command -v redis-server >/dev/null || apt_install redis-server
    if ! redis_up; then
        say "starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
        for _ in $(seq 1 30); do redis_up && break; sleep 0.5; done
        redis_up || die "Redis did not start"
    fi
}

ensure_nextest() {
    if ! cargo nextest --version >/dev/null 2>&1; then
        say "installing cargo-nextest"
        cargo install --locked cargo-nextest
    fi
}
