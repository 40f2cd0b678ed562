"""Sink: summaries and events from the bus into the store, and failed writes to RETRY."""
