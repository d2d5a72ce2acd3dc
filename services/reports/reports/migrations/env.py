from recaudo_common.migrations import run_env

from reports.models import Base

run_env(Base)
