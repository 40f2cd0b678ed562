"""Ingest: drain requests in, durable bus records out.

In the order a request meets them: `drain` (the Logplex drain endpoint: credentials,
headers, body), `framing` (octet-counted frames; `native` is the compiled reader),
`parse` (one line to one record; bulk readers for the usual lines), `records` (a
request's frames to columnar bus records, in log order), `limits` (per-app series
limits), `acceptor` (once per Logplex-Frame-Id, then a durable append) and `handoff`
(the socket through which HTTP processes hand their records to the log's process).
"""
