"""drainpipe against mtail and InfluxDB 1.x on one router file: `python -m bench.peers`."""
