"""The reports service: scheduled reports (who gets which report, how often) and their runs."""
