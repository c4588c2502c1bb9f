#!/bin/sh
# The platform's migration tool, simulated: reverts the last migration (0042) of the fleet's
# database in one transaction, as `npm run db:rollback` does on the real platform.
set -eu
: "${DATABASE_URL:?DATABASE_URL is not set}"
here=$(dirname "$0")
psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -f "$here/rollback.sql"
echo "rolled back migration 0042"
