"""Reporting: statistics (IQM, bootstrap CIs, P(improvement)), report tables and plots."""
