-- Creates (or updates) the application role of Chatons Cloud and hands it the schema.
-- Run by the `db-setup` init container of cloud-api, before `cloud-api migrate`, as the
-- database owner (DATABASE_ADMIN_URL: the bundled Postgres's `chatons` superuser, or a managed
-- service's admin user with CREATEROLE). The services then connect as the application role
-- (DATABASE_URL), which owns its tables but is not a superuser, cannot create roles or
-- databases, and cannot bypass row security. Idempotent: every pod start runs it.
--
-- Input: the environment variable APP_URL_FILE names a file holding DATABASE_URL
-- (postgres://<role>:<password>@host:port/db?...; role and password URL-safe, e.g. hex).
\set ON_ERROR_STOP on
\set QUIET on
\set app_user `sed -E 's|^[a-z]+://([^:@/]+):.*$|\1|' "$APP_URL_FILE"`
\set app_password `sed -E 's|^[a-z]+://[^:@/]+:([^@]*)@.*$|\1|' "$APP_URL_FILE"`

SELECT :'app_user' ~ '^[a-z_][a-z0-9_]*$' AS app_user_ok,
       length(:'app_password') >= 16 AS app_password_ok,
       :'app_user' = current_user AS app_is_admin \gset
\if :app_user_ok
\else
  \echo 'db-setup: the user of DATABASE_URL must be a plain lower-case role name'
  SELECT 1/0;
\endif
\if :app_password_ok
\else
  \echo 'db-setup: the password of DATABASE_URL must have at least 16 characters'
  SELECT 1/0;
\endif
\if :app_is_admin
  \echo 'db-setup: DATABASE_URL uses the admin role of DATABASE_ADMIN_URL; give the services their own role (docs/OPERATIONS.md)'
  SELECT 1/0;
\endif

SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_user') AS create_role \gset
\if :create_role
  -- Defaults: NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS.
  CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
  \echo 'db-setup: created the application role'
\else
  ALTER ROLE :"app_user" WITH LOGIN PASSWORD :'app_password';
\endif

SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls OR rolreplication AS too_strong
  FROM pg_roles WHERE rolname = :'app_user' \gset
\if :too_strong
  \echo 'db-setup: the application role has superuser, createrole, createdb, replication or bypassrls: remove them (ALTER ROLE ... NOSUPERUSER ...)'
  SELECT 1/0;
\endif

-- Membership lets a non-superuser admin (managed Postgres) transfer ownership below.
SELECT NOT pg_has_role(current_user, :'app_user', 'MEMBER') AS grant_membership \gset
\if :grant_membership
  GRANT :"app_user" TO CURRENT_USER;
\endif
SELECT current_database() AS dbname \gset
GRANT CONNECT, TEMPORARY ON DATABASE :"dbname" TO :"app_user";
GRANT USAGE, CREATE ON SCHEMA public TO :"app_user";

-- Objects created by the admin role (releases before the application role existed) move to
-- the application role, so its migrations can alter them.
SELECT set_config('chatons.app_user', :'app_user', false) IS NOT NULL AS configured \gset
DO $$
DECLARE
  app text := current_setting('chatons.app_user');
  obj record;
BEGIN
  FOR obj IN
    SELECT c.oid::regclass AS name, c.relkind
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
       AND pg_get_userbyid(c.relowner) <> app
       -- sequences owned by a table column follow their table
       AND NOT (c.relkind = 'S' AND EXISTS (
             SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO %I',
      CASE obj.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                       WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
      obj.name, app);
    RAISE NOTICE 'db-setup: % now owned by %', obj.name, app;
  END LOOP;
  FOR obj IN
    SELECT p.oid::regprocedure AS name
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> app
  LOOP
    EXECUTE format('ALTER ROUTINE %s OWNER TO %I', obj.name, app);
  END LOOP;
  FOR obj IN
    SELECT t.oid::regtype AS name
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'c') AND pg_get_userbyid(t.typowner) <> app
       AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid)
  LOOP
    EXECUTE format('ALTER TYPE %s OWNER TO %I', obj.name, app);
  END LOOP;
END
$$;
\echo 'db-setup: application role ready'
