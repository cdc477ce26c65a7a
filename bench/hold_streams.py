#!/usr/bin/env python3
"""Open N Server-Sent Events streams (bff-web's `GET /api/orders/{id}/events`) and hold them, idle.

Stream i belongs to user `users[i % len(users)]` and watches that user's first order (id user*100+1, the mock
domain's numbering), with the user's bearer token. A stream counts as open once its `200` head and its first
status event (`id: 0`) have arrived; it is then held (heartbeats are read and dropped) until SIGTERM/SIGINT or
--hold-s. Prints `READY <open> <failed> <seconds>` once every stream is open (or failed), so the caller can read
the gateway's memory while they are held; `--report-heartbeats` also counts the heartbeats seen at exit.
Standard library only.

    python3 bench/hold_streams.py --port 18181 -n 10000 --tokens tokens.tsv
"""
import argparse
import asyncio
import signal
import time

FAILURES = []  # status lines of the refused streams


async def one(port, request, sem, streams):
    async with sem:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        try:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                FAILURES.append(head.split(b"\r\n")[0].decode(errors="replace"))
                writer.close()
                return False
            # chunked body: read until the first status event has arrived
            seen = b""
            while b"id: 0" not in seen:
                chunk = await asyncio.wait_for(reader.read(4096), 30)
                if not chunk:
                    return False
                seen += chunk
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
            writer.close()
            return False
        streams.append((reader, writer))
        return True


async def drain(reader, counter):
    try:
        while True:
            chunk = await reader.read(4096)
            if not chunk:
                return
            counter[0] += chunk.count(b": hb")
    except OSError:
        return


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("-n", type=int, default=1000, help="streams to open and hold")
    ap.add_argument("--tokens", required=True, help="file of `user<TAB>token` lines")
    ap.add_argument("--concurrency", type=int, default=200, help="streams being set up at once")
    ap.add_argument("--hold-s", type=float, default=600, help="give up holding after this many seconds")
    a = ap.parse_args()
    users = [line.split("\t") for line in open(a.tokens).read().split("\n") if line.strip()]
    requests = [
        (
            f"GET /api/orders/{int(user) * 100 + 1}/events HTTP/1.1\r\nHost: 127.0.0.1:{a.port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        for user, token in users
    ]
    sem = asyncio.Semaphore(a.concurrency)
    streams = []
    t0 = time.monotonic()
    results = await asyncio.gather(
        *(one(a.port, requests[i % len(requests)], sem, streams) for i in range(a.n))
    )
    opened = sum(1 for r in results if r)
    print(f"READY {opened} {a.n - opened} {time.monotonic() - t0:.2f}", flush=True)
    for line in sorted(set(FAILURES)):
        print(f"REFUSED {FAILURES.count(line)} {line}", flush=True)

    heartbeats = [0]
    readers = [asyncio.ensure_future(drain(r, heartbeats)) for r, _ in streams]
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    try:
        await asyncio.wait_for(done.wait(), a.hold_s)
    except asyncio.TimeoutError:
        pass
    still_open = sum(1 for t in readers if not t.done())
    print(f"HELD {still_open} {heartbeats[0]}", flush=True)
    for _, w in streams:
        w.close()


if __name__ == "__main__":
    asyncio.run(main())
