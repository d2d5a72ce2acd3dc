from recaudo_common.migrations import run_env

from messaging.models import Base

run_env(Base)
