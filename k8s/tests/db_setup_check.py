#!/usr/bin/env python3
"""The application-role setup of k8s/base/db-setup.sql, run for real against the local
PostgreSQL (a scratch database and role, dropped afterwards):

  - a database with a table and sequence owned by the admin (what a release before the
    application role left behind) is handed to the new role;
  - the role is LOGIN, not superuser, no CREATEROLE/CREATEDB/BYPASSRLS/REPLICATION;
  - running the script again changes nothing and succeeds (every pod start runs it);
  - `cloud-api migrate` then succeeds as that role, and `cloud-api serve` connects as it over
    TLS (sslmode=require) when the server offers TLS (said loudly when it does not);
  - a DATABASE_URL naming the admin role itself, or a short password, is refused.

usage: db_setup_check.py --bin target/debug/cloud-api --sql k8s/base/db-setup.sql
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time

ADMIN = os.environ.get("TEST_DATABASE_ADMIN", "postgres://postgres@127.0.0.1:5432")


def psql(db, sql):
    return subprocess.run(["psql", "-X", "-qtA", "-v", "ON_ERROR_STOP=1", f"{ADMIN}/{db}", "-c", sql],
                          capture_output=True, text=True, check=True).stdout.strip()


def run_setup(sql_path, db, app_url):
    with tempfile.NamedTemporaryFile("w", delete=False) as f:
        f.write(app_url + "\n")
    try:
        return subprocess.run(["psql", "-X", "-q", "-d", f"{ADMIN}/{db}", "-f", sql_path],
                              env={**os.environ, "APP_URL_FILE": f.name}, capture_output=True, text=True)
    finally:
        os.unlink(f.name)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sql", required=True)
    args = ap.parse_args()
    stamp = f"{int(time.time())}_{secrets.token_hex(4)}"
    db, role = f"t_dbsetup_{stamp}", f"t_app_{stamp}"
    password = secrets.token_hex(24)
    host = ADMIN.split("@", 1)[1]
    app_url = f"postgres://{role}:{password}@{host}/{db}"
    problems = []
    psql("postgres", f"CREATE DATABASE {db}")
    try:
        psql(db, "CREATE TABLE legacy (id bigserial PRIMARY KEY, note text)")
        for attempt in (1, 2):
            r = run_setup(args.sql, db, app_url)
            if r.returncode != 0:
                problems.append(f"run {attempt}: db-setup failed: {r.stdout}{r.stderr}")
                break
            print(f"  db-setup run {attempt}: ok ({r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ''})")
        attrs = psql(db, f"SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication "
                         f"FROM pg_roles WHERE rolname = '{role}'")
        if attrs != "t|f|f|f|f|f":
            problems.append(f"role attributes (login, super, createrole, createdb, bypassrls, replication) = {attrs!r}")
        owners = psql(db, "SELECT string_agg(DISTINCT pg_get_userbyid(relowner), ',') FROM pg_class "
                          "WHERE relname IN ('legacy', 'legacy_id_seq')")
        if owners != role:
            problems.append(f"objects of the earlier release are owned by {owners!r}, not the application role")
        ssl = psql("postgres", "SHOW ssl") == "on"
        mode = "require" if ssl else "prefer"
        if not ssl:
            print("  WARNING: this PostgreSQL has ssl=off: the TLS connection (sslmode=require) is NOT checked here")
        env = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": f"{app_url}?sslmode={mode}"}
        m = subprocess.run([args.bin, "migrate"], env=env, capture_output=True, text=True)
        if m.returncode != 0:
            problems.append(f"cloud-api migrate as the application role failed: {m.stderr[-2000:]}")
        else:
            tables = psql(db, f"SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = '{role}'")
            print(f"  cloud-api migrate as {role} (sslmode={mode}): ok, {tables} tables owned by the role")
        if ssl and m.returncode == 0:
            data = tempfile.mkdtemp(prefix="dbsetup-")
            serve = subprocess.Popen([args.bin, "serve"], env={**env, "PORT": "0", "CHATONS_DATA_DIR": data},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                seen = ""
                for _ in range(100):
                    seen = psql("postgres", f"SELECT string_agg(s.ssl::text, ',') FROM pg_stat_ssl s "
                                            f"JOIN pg_stat_activity a ON a.pid = s.pid WHERE a.usename = '{role}'")
                    if seen:
                        break
                    time.sleep(0.1)
                if not seen or "false" in seen:
                    problems.append(f"cloud-api's connections as the application role use TLS: {seen!r}")
                else:
                    print(f"  cloud-api serve connects as {role} over TLS (pg_stat_ssl: {seen})")
            finally:
                serve.send_signal(signal.SIGTERM)
                serve.wait(timeout=20)
        # Refusals.
        admin_user = psql("postgres", "SELECT current_user")
        for desc, url in (("the admin role itself", f"postgres://{admin_user}:{password}@{host}/{db}"),
                          ("a short password", f"postgres://{role}x:short@{host}/{db}")):
            r = run_setup(args.sql, db, url)
            if r.returncode == 0:
                problems.append(f"db-setup accepted {desc}")
            else:
                print(f"  db-setup refuses {desc}")
    finally:
        psql("postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        psql("postgres", f"DROP ROLE IF EXISTS {role}")
    for p in problems:
        print(f"DB-SETUP: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
