"""WebSocket client for the example app's /v1/ws through the load balancer, over TLS.

    python3 ws.py probe --connect 127.0.0.1:18443 --host fleet-lb1 --ca CA.crt
    python3 ws.py hold --connect 127.0.0.1:18443 --host fleet-lb1 --ca CA.crt --count 5000

Connects to --connect (an address on this machine) while naming --host for SNI, the
certificate check and the Host header, as a browser that resolved --host would.

probe: one connection; prints one JSON object with the backend's hello (what the app saw of
the connection: forwarded headers, client address) and whether three messages came back.
hold: opens up to --count connections at once (--rate per second), checks each with one
echo, holds them all for --hold seconds, then closes them; prints how many were held, how
long opening took and the first error that stopped it. Bounded in count and time.
"""

import argparse
import asyncio
import json
import resource
import socket
import ssl
import sys
import time

from websockets.asyncio.client import connect as async_connect
from websockets.sync.client import connect


def context(ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def probe(args):
    host, port = args.connect.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    with connect(
        f"wss://{args.host}/v1/ws",
        sock=sock,
        ssl=context(args.ca),
        server_hostname=args.host,
        open_timeout=10,
        proxy=None,
    ) as ws:
        hello = json.loads(ws.recv(timeout=10))
        echoed = []
        for n in range(3):
            ws.send(f"ping {n}")
            echoed.append(ws.recv(timeout=10) == f"ping {n}")
    print(json.dumps({"hello": hello, "echoed": all(echoed)}))
    return 0


async def hold(args):
    # Every connection is a file descriptor here: take the hard limit.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host, port = args.connect.rsplit(":", 1)
    ctx = context(args.ca)
    held, error = [], None
    started = time.monotonic()
    deadline = started + args.open_timeout

    async def one(n):
        ws = await async_connect(
            f"wss://{args.host}/v1/ws",
            host=host,
            port=int(port),
            ssl=ctx,
            server_hostname=args.host,
            open_timeout=10,
            ping_interval=None,
            proxy=None,
        )
        await ws.recv()
        await ws.send(f"hold {n}")
        if await ws.recv() != f"hold {n}":
            raise RuntimeError(f"connection {n} echoed something else")
        return ws

    batch = max(1, args.rate // 10)
    n = 0
    while n < args.count and error is None and time.monotonic() < deadline:
        results = await asyncio.gather(*(one(n + i) for i in range(min(batch, args.count - n))), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                error = error or f"{type(result).__name__}: {result}"
            else:
                held.append(result)
        n += len(results)
        await asyncio.sleep(0.1)
    opened = time.monotonic() - started
    await asyncio.sleep(args.hold)
    # Still open after the hold: every held connection answers once more.
    alive = sum(await asyncio.gather(*(still_open(ws, i) for i, ws in enumerate(held))))
    await asyncio.gather(*(ws.close() for ws in held), return_exceptions=True)
    print(
        json.dumps(
            {
                "asked": args.count,
                "held": len(held),
                "alive_after_hold": alive,
                "open_seconds": round(opened, 1),
                "stopped_by": error,
            }
        )
    )
    return 0


async def still_open(ws, n):
    try:
        await ws.send(f"again {n}")
        return int(await asyncio.wait_for(ws.recv(), 10) == f"again {n}")
    except Exception:  # noqa: BLE001 - a connection that died counts as not alive
        return 0


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["probe", "hold"])
    parser.add_argument("--connect", required=True, help="address:port on this machine")
    parser.add_argument("--host", required=True, help="name for SNI, certificate and Host")
    parser.add_argument("--ca", required=True, help="CA bundle that signed the load balancer's certificate")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=500, help="new connections per second")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds to hold every connection")
    parser.add_argument("--open-timeout", type=float, default=120.0, help="stop opening after this many seconds")
    args = parser.parse_args(argv)
    if not args.connect.startswith(("127.", "localhost:", "[::1]:")):
        parser.error("--connect must be a loopback address: load goes only to this machine's published ports")
    return probe(args) if args.mode == "probe" else asyncio.run(hold(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
