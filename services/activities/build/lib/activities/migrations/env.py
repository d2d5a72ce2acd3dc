from recaudo_common.migrations import run_env

from activities.models import Base

run_env(Base)
