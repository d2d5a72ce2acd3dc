from recaudo_common.migrations import run_env

from portfolio.models import Base

run_env(Base)
