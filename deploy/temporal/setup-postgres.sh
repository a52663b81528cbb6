#!/bin/sh
# Creates Temporal's databases on PostgreSQL and migrates them to the server's schema.
# Idempotent: `create` of an existing database fails harmlessly, migrations skip what
# is applied. Runs in temporalio/admin-tools (compose service temporal-schema).
set -eu
tool() { temporal-sql-tool --plugin postgres12 --ep postgresql -u temporal -p 5432 "$@"; }
schema=/etc/temporal/schema/postgresql/v12
for db in temporal temporal_visibility; do
  tool --db "$db" create || true
  tool --db "$db" setup-schema -v 0.0 || true
done
tool --db temporal update-schema -d "$schema/temporal/versioned"
tool --db temporal_visibility update-schema -d "$schema/visibility/versioned"
echo "temporal schema ready"
