"""Catalogue commands: sync, list, show, stats, sql, export, db."""
