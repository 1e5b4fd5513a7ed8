#!/bin/sh
# Run once by the postgres image on an empty data directory: the store and the search
# index get a database and a role each, neither a superuser, so that a writer of one
# database is not a writer of the other (verify --cross-check holds one to the other:
# docs/operations.md, "The store held to the index").
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v store_password="$SSHTRAIL_STORE_PASSWORD" -v search_password="$SSHTRAIL_SEARCH_PASSWORD" <<'SQL'
CREATE ROLE sshtrail LOGIN PASSWORD :'store_password';
CREATE ROLE sshtrail_search LOGIN PASSWORD :'search_password';
CREATE DATABASE sshtrail OWNER sshtrail;
CREATE DATABASE sshtrail_search OWNER sshtrail_search;
REVOKE ALL ON DATABASE sshtrail FROM PUBLIC;
REVOKE ALL ON DATABASE sshtrail_search FROM PUBLIC;
SQL
