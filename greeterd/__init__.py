"""greeterd: a systemd socket-activated greeter daemon and its client."""

__version__ = "0.1.0"
