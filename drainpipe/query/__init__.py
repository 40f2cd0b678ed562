"""Query: the read API, its read planning over the store's tiers, and downsampling."""
