"""drainpipe: Heroku-grade metrics from Logplex HTTPS log drains, self-hosted."""

__version__ = "0.1.0"
