#!/usr/bin/env python3
"""Open N keep-alive connections to 127.0.0.1:PORT, send one GET on each, read the whole response, then hold
them all open (idle) until SIGTERM/SIGINT arrives (or --hold-s passes).

Prints one line `READY <ok> <failed> <seconds>` on stdout once every connection has had its answer (or failed),
so the caller can read the server's memory while the connections are held. Standard library only.

    python3 bench/hold_conns.py --port 18096 --path /data.json -n 10000
"""
import argparse
import asyncio
import signal
import time


async def one(port, request, sem, conns):
    async with sem:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        try:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = None
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            ok = head.startswith(b"HTTP/1.1 200") and length is not None
            if length:
                await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            writer.close()
            return False
        conns.append(writer)  # keep the connection (and its socket) alive
        return ok


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/data.json")
    ap.add_argument("-n", type=int, default=1000, help="connections to open and hold")
    ap.add_argument("--concurrency", type=int, default=200, help="connections being set up at once")
    ap.add_argument("--hold-s", type=float, default=600, help="give up holding after this many seconds")
    a = ap.parse_args()
    request = (f"GET {a.path} HTTP/1.1\r\nHost: 127.0.0.1:{a.port}\r\nConnection: keep-alive\r\n\r\n").encode()
    sem = asyncio.Semaphore(a.concurrency)
    conns = []
    t0 = time.monotonic()
    results = await asyncio.gather(*(one(a.port, request, sem, conns) for _ in range(a.n)))
    ok = sum(1 for r in results if r)
    print(f"READY {ok} {a.n - ok} {time.monotonic() - t0:.2f}", flush=True)

    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    try:
        await asyncio.wait_for(done.wait(), a.hold_s)
    except asyncio.TimeoutError:
        pass
    for w in conns:
        w.close()


if __name__ == "__main__":
    asyncio.run(main())
