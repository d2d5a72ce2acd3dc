#!/bin/sh
# Entrypoint of the Recaudo image (deploy/Dockerfile): one image, one process per container.
#
#   service NAME    apply NAME's Alembic migrations (its own schema only, so containers
#                   starting together never migrate the same schema), then run the
#                   nameko service NAME in the foreground
#   gateway         load the demo data when RECAUDO_DEMO is on (the services it waits
#                   for have migrated their schemas by then), then run gunicorn
#   migrate [S...]  apply the migrations of every service (or of S...) and exit
#   anything else   run as given, e.g. `recaudo seed` or `python -m recaudo_common.healthcheck auth`
#
# The database itself is created by the PostgreSQL container (POSTGRES_DB) and the
# vhost by RabbitMQ's RABBITMQ_DEFAULT_VHOST, so `recaudo createdb` is not needed here.
set -eu
cd "$(dirname "$0")/.."

case "${1:-gateway}" in
  service)
    [ $# -eq 2 ] || { echo "usage: entrypoint.sh service NAME" >&2; exit 2; }
    recaudo migrate "$2"
    exec python -m recaudo_common.run "$2"
    ;;
  gateway)
    recaudo seed   # a no-op unless RECAUDO_DEMO is on; idempotent, as in `make up`
    exec gunicorn -c deploy/gunicorn.conf.py gateway.wsgi:app
    ;;
  migrate)
    shift
    exec recaudo migrate "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
