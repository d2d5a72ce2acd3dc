"""Each service's models and its Alembic history describe the same schema."""
import pytest

from recaudo_common import migrations
from recaudo_common.config import SERVICES


@pytest.mark.parametrize("service", SERVICES)
def test_models_and_migrations_agree(service):
    assert migrations.drift(service) == []


def test_replicas_migrating_at_once_take_turns():
    """Two pods of a service start together, each migrating its schema first (the k8s
    init container): the advisory lock makes the second wait and find nothing to do,
    where without it both would create the same tables and one would fail."""
    import os
    import subprocess
    import sys
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from recaudo_common.config import settings

    url = make_url(settings().database_url)
    name = f"recaudo_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        env = {**os.environ, "RECAUDO_DATABASE_URL": url.set(database=name)
               .render_as_string(hide_password=False)}
        runs = [subprocess.Popen([sys.executable, "-m", "recaudo_common.cli", "migrate",
                                  "activities"], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for _ in range(3)]
        outputs = [(run.wait(timeout=120), run.stdout.read()) for run in runs]
        assert all(code == 0 for code, _ in outputs), outputs
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
