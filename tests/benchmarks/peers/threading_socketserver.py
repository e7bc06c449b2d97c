"""Stdlib peer for the benchmark: socketserver with a thread per connection.

Socket-activated (LISTEN_FDS, fd 3); the inherited socket replaces the one the server class
would bind, so it never binds or listens itself.
"""

import os
import socket
import socketserver


class Greeter(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        name = self.rfile.readline(1026).decode("utf-8", "replace").strip()
        self.wfile.write(f"Hello, {name}\n".encode())


class InheritedServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__("", Greeter, bind_and_activate=False)
        self.socket = socket.socket(fileno=3)


assert os.environ.get("LISTEN_FDS") == "1", "run under systemd-socket-activate"
InheritedServer().serve_forever()
