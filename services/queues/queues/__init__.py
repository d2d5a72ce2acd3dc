"""Recaudo queues service: Collection strategies, queues, assignments, leases on accounts being worked, campaigns."""
