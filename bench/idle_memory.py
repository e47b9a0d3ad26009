#!/usr/bin/env python3
"""Memory per idle keep-alive client connection of a running proxy.

    bench/idle_memory.py --port 8080 --pid 1234 [--connections 4000] [--path /] [--tls]

Opens N client connections to 127.0.0.1:PORT, sends one keep-alive GET on each and reads its
response, then leaves them all open and idle (`--tls`: TLS connections, the certificate unchecked). The proxy's RSS (the process PID and its descendants,
so NGINX's master and worker count) is read before and after; the growth divided by N is the figure.
Then a second request on every connection proves they were held, not dropped.

Prints one line: `IDLE connections=N rss_before_kib=.. rss_after_kib=.. per_conn_kib=.. second_ok=..`.
"""

import argparse
import os
import resource
import socket
import sys
import time


def descendants(pid):
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_kib(pid):
    total = 0
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def read_response(sock, buf=b""):
    """Reads one response with a Content-Length body; returns (status, leftover bytes)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the response body")
        rest += chunk
    return int(head.split(b" ", 2)[1]), rest[length:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--connections", type=int, default=4000)
    ap.add_argument("--path", default="/")
    ap.add_argument("--batch", type=int, default=50, help="connections opened (requests in flight) at once")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds to wait before reading RSS")
    ap.add_argument("--tls", action="store_true",
                    help="speak TLS (the certificate is not checked): idle TLS keep-alive connections")
    ap.add_argument("--hold", type=float, default=0.0,
                    help="seconds to keep the connections idle after the measurement (for a heap profiler)")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of sockets

    request = f"GET {args.path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    tls = None
    if args.tls:
        import ssl
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE

    def connect(timeout):
        s = socket.create_connection(("127.0.0.1", args.port), timeout=timeout)
        return tls.wrap_socket(s, server_hostname="bench.test") if tls else s
    # Warm-up: a few hundred connections opened and closed, so that pools, caches and the allocator's
    # first arenas are in the baseline rather than in the per-connection figure.
    for _ in range(200):
        with connect(10) as s:
            s.sendall(request)
            read_response(s)
    time.sleep(args.settle)
    before = rss_kib(args.pid)

    socks = []
    failures = 0
    batch = args.batch  # requests in flight at once while opening

    def open_idle(count):
        nonlocal failures
        for start in range(0, count, batch):
            group = []
            for _ in range(min(batch, count - start)):
                s = connect(30)
                s.sendall(request)
                group.append(s)
            for s in group:
                try:
                    status, _ = read_response(s)
                    failures += status != 200
                except (OSError, ConnectionError, ValueError):
                    failures += 1
            socks.extend(group)

    # In two halves: the growth over the second half is the marginal cost of one more idle
    # connection, free of what any number of them costs once (pools, caches, a burst's buffers).
    half = args.connections // 2
    open_idle(half)
    time.sleep(args.settle)
    middle = rss_kib(args.pid)
    open_idle(args.connections - half)
    time.sleep(args.settle)
    after = rss_kib(args.pid)
    if args.hold > 0:
        print(f"holding {len(socks)} idle connections for {args.hold} s", flush=True)
        time.sleep(args.hold)

    second_ok = 0
    for start in range(0, len(socks), batch):
        group = socks[start:start + batch]
        for s in group:
            try:
                s.sendall(request)
            except OSError:
                pass
        for s in group:
            try:
                status, _ = read_response(s)
                second_ok += status == 200
            except (OSError, ConnectionError, ValueError):
                pass
    for s in socks:
        s.close()
    per_conn = (after - before) / args.connections
    marginal = (after - middle) / (args.connections - half)
    print(f"IDLE connections={args.connections} rss_before_kib={before} rss_after_kib={after} "
          f"per_conn_kib={per_conn:.2f} marginal_kib={marginal:.2f} first_failed={failures} second_ok={second_ok}")
    return 0 if failures == 0 and second_ok == args.connections else 1


if __name__ == "__main__":
    sys.exit(main())
