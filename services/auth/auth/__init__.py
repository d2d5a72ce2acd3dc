"""Recaudo auth service: Users, profiles and permissions, teams, institution scopes, sessions, API keys and the security audit log."""
