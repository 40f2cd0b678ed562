"""Service: where the stages meet. `drainpipe up`, the scale-out roles, HTTP serving and
its guards, the HTTP worker processes and signals; nothing below imports it."""
