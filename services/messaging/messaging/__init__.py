"""Recaudo messaging service: Mailboxes, templates, outbound email and fax with delivery state, inbound mail matched to debtors."""
