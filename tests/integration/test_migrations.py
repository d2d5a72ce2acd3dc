"""Each service's models and its Alembic history describe the same schema."""
import pytest

from recaudo_common import migrations
from recaudo_common.config import SERVICES


@pytest.mark.parametrize("service", SERVICES)
def test_models_and_migrations_agree(service):
    assert migrations.drift(service) == []
