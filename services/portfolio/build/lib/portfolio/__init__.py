"""Recaudo portfolio service: Institutions, debtors and their contacts, accounts, instalments, movements, stages and statuses, imports."""
