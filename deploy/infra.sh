#!/usr/bin/env bash
# Makes sure the machine's PostgreSQL and RabbitMQ answer (starting them when they are
# installed but stopped), enables RabbitMQ's management plugin, then creates the
# database and the vhost named by the RECAUDO_* settings and applies every migration.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 "${2:-60}"); do port_open "$1" && return 0; sleep 1; done; return 1; }

if ! port_open 5432; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
    wait_port 5432 30 || { echo "PostgreSQL did not start; see /var/log/postgresql/"; exit 1; }
  else
    echo "PostgreSQL is not installed. Install it (apt-get install postgresql) with trust auth"
    echo "for 127.0.0.1, or point RECAUDO_DATABASE_URL at a server you have."; exit 1
  fi
fi

if ! port_open 5672; then
  if command -v rabbitmq-server >/dev/null; then
    say "starting RabbitMQ"
    rabbitmq-server -detached
    wait_port 5672 60 || { echo "RabbitMQ did not start; see /var/log/rabbitmq/"; exit 1; }
  else
    echo "RabbitMQ is not installed. Install it (apt-get install rabbitmq-server),"
    echo "or point RECAUDO_AMQP_URI at a broker you have."; exit 1
  fi
fi

if ! port_open 15672; then
  say "enabling RabbitMQ's management plugin"
  rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null
  wait_port 15672 60 || { echo "RabbitMQ's management plugin did not start"; exit 1; }
fi

# RECAUDO_FRESH_DB=1 (make test): the test database starts from nothing every run
.venv/bin/recaudo createdb ${RECAUDO_FRESH_DB:+--fresh}
.venv/bin/recaudo migrate
