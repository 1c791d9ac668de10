"""Acquisition: evidence sources (read-only, write-blocked), the imaging engine, safeguards."""
