"""Tools on top of the service: replaying saved drain logs and simulating traffic."""
