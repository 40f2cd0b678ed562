"""Rollup: raw measurement batches in, per-minute summaries out (core and bus worker)."""
