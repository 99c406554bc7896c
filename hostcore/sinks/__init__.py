"""Sinks: where packed events go. The core's own sinks live here."""
