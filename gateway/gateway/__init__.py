"""Recaudo gateway: the web UI and the REST API in front of the nameko services."""
