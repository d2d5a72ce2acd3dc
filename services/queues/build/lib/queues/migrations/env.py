from recaudo_common.migrations import run_env

from queues.models import Base

run_env(Base)
