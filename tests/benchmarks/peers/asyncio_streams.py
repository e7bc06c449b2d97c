"""Stdlib peer for the benchmark: the usual asyncio way to write this server.

Socket-activated like greeterd (LISTEN_FDS, fd 3), no limits, no logging. Note what
start_unix_server(sock=...) does to the inherited socket: it calls listen() again with
asyncio's default backlog of 100, replacing the unit's Backlog= (the benchmark shows it).
"""

import asyncio
import os
import socket


async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    line = await reader.readline()
    name = line.decode("utf-8", "replace").strip()
    writer.write(f"Hello, {name}\n".encode())
    await writer.drain()
    writer.close()


async def main() -> None:
    assert os.environ.get("LISTEN_FDS") == "1", "run under systemd-socket-activate"
    listener = socket.socket(fileno=3)
    server = await asyncio.start_unix_server(greet, sock=listener)
    await server.serve_forever()


asyncio.run(main())
