"""A Python server on the `websockets` package doing what invigil's fan-out does: check each
socket's bearer token before the handshake, greet it, and deliver a broadcast to every open socket
when GET /broadcast is called (with `websockets.broadcast`). Liveness is the library's own: a ping
every 20 s. Usage: python_websockets.py --listen HOST:PORT --tokens FILE --payload FILE."""

import argparse
import asyncio
import datetime
import http
import json
import signal

from websockets.asyncio.server import broadcast, serve


def options():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--payload", required=True)
    return parser.parse_args()


async def main():
    args = options()
    with open(args.tokens, encoding="utf-8") as f:
        tokens = set(f.read().split())
    with open(args.payload, encoding="utf-8") as f:
        payload = f.read()
    connections = set()

    def process_request(connection, request):
        if request.path == "/broadcast":
            broadcast(connections, payload)
            return connection.respond(http.HTTPStatus.OK, f"{len(connections)}\n")
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[len("Bearer "):] not in tokens:
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "unauthorized\n")
        return None

    async def handler(websocket):
        connections.add(websocket)
        try:
            now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
            await websocket.send(
                json.dumps({"type": "WELCOME", "server_time": now, "heartbeat_ms": 5000})
            )
            # The clients' heartbeats need no answer.
            async for _ in websocket:
                pass
        finally:
            connections.discard(websocket)

    host, port = args.listen.rsplit(":", 1)
    async with serve(
        handler,
        host,
        int(port),
        process_request=process_request,
        max_size=1024 * 1024,
        backlog=4096,
    ) as server:
        address = server.sockets[0].getsockname()
        print(f"python-websockets listening on {address[0]}:{address[1]}", flush=True)
        stop = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
        await stop


if __name__ == "__main__":
    asyncio.run(main())
