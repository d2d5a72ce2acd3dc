"""Recaudo activities service: The contact log, result codes, promises to pay, disputes, the agenda and productivity rollups."""
