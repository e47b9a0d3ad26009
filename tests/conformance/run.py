#!/usr/bin/env python3
"""Runs the conformance corpus against Spillway, HAProxy and/or NGINX and prints the scores.

    tests/conformance/run.py --proxy all [--verbose] [--case PREFIX] [--timeout 3] [--h2]

Each proxy gets its own recording backend and runs every case on a fresh client connection; the
proxies run side by side (one thread each), cases one after another within a proxy. See README.md.
"""

import argparse
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import backend as backend_mod  # noqa: E402
import cases as cases_mod  # noqa: E402
import h2cases  # noqa: E402
import httpmsg  # noqa: E402
import proxies  # noqa: E402
import verdicts  # noqa: E402

PROXIES = ("spillway", "haproxy", "nginx")
FORWARD_GRACE = 0.05  # after the last expected answer from the backend: time for extra bytes
CLOSE_GRACE = 1.0  # after an answer the proxy made itself (or none): time for it to close


class Result:
    def __init__(self, case, category, reason, obs):
        self.case = case
        self.category = category
        self.reason = reason
        self.obs = obs


def _sender(sock, segments, pause, errors):
    try:
        for i, segment in enumerate(segments):
            if i:
                time.sleep(pause)
            sock.sendall(segment)
    except OSError as e:  # the proxy closed or reset: what it answered is still read
        errors.append(e)


def run_case(case, port, backend, timeout):
    """Runs one case on a fresh connection to `port`; returns a verdicts.Observation."""
    obs = verdicts.Observation()
    backend.begin_case(case.id, case.response, case.response_close, case.response_count)
    expected = max(v.responses(case) for v in case.expect)
    start = time.monotonic()
    deadline = start + timeout
    buf = b""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        obs.client_error = None
        obs.hang = True
        obs.backend, _ = backend.end_case()
        obs.leftover = str(e).encode()
        return obs
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    errors = []
    sender = threading.Thread(target=_sender, args=(sock, case.send, case.pause, errors), daemon=True)
    sender.start()
    grace_until = None
    try:
        while True:
            # Frame every complete response in the buffer.
            while buf and obs.client_error is None and not (obs.responses and obs.responses[-1].tunnel):
                index = len(obs.responses)
                method = case.methods[index] if index < len(case.methods) else "GET"
                try:
                    msg, used = httpmsg.parse_response(buf, method, obs.closed)
                except httpmsg.Incomplete:
                    break
                except httpmsg.Ambiguous as e:
                    obs.client_error = "%s (bytes: %r)" % (e, buf[:80])
                    break
                buf = buf[used:]
                msg.from_backend = msg.first("x-backend-request") is not None
                if 100 <= msg.status < 200 and msg.status != 101:
                    obs.interim.append(msg)
                else:
                    obs.responses.append(msg)
            if obs.closed or obs.client_error:
                break
            now = time.monotonic()
            done = len(obs.responses) >= expected and not buf
            if done or (obs.responses and obs.responses[-1].tunnel):
                if grace_until is None:
                    last = obs.responses[-1] if obs.responses else None
                    wait = FORWARD_GRACE if last is not None and last.from_backend else CLOSE_GRACE
                    grace_until = min(deadline, now + wait)
                if now >= grace_until:
                    break
                wait = grace_until - now
            else:
                grace_until = None
                if now >= deadline:
                    obs.hang = True
                    break
                wait = deadline - now
            sock.settimeout(max(wait, 0.001))
            try:
                data = sock.recv(262144)
            except socket.timeout:
                continue
            except OSError:
                data = b""
            if data:
                buf += data
            else:
                obs.closed = True
    finally:
        sock.close()
        sender.join(1)
    obs.leftover = buf if not (obs.responses and obs.responses[-1].tunnel) else b""
    obs.elapsed = time.monotonic() - start
    record, closed_some = backend.end_case()
    obs.backend = record
    if closed_some:
        time.sleep(0.05)  # let the proxy see the backend close before the next case reuses it
    return obs


class H2Response:
    """The answer on an HTTP/2 case's stream, shaped like httpmsg.Message for the verdicts."""

    tunnel = False

    def __init__(self, fields):
        self.headers = [(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in fields]
        self.status = int(self.first(":status") or 0)
        self.body = b""
        self.from_backend = self.first("x-backend-request") is not None

    def first(self, name):
        for n, v in self.headers:
            if n == name:
                return v
        return None


def run_h2_case(case, port, backend, timeout):
    """Runs one HTTP/2 case (h2cases.py): the preface, an empty SETTINGS and the case's frames on a
    fresh connection, then reads until stream 1 ends or is reset, the connection ends, or the
    deadline; the proxy's SETTINGS are acknowledged. Returns a verdicts.Observation."""
    import hpack  # Debian's python3-hpack (with python3-h2); only HTTP/2 cases need it

    obs = verdicts.Observation()
    backend.begin_case(case.id, None, False, 1)
    start = time.monotonic()
    deadline = start + timeout
    decoder = hpack.Decoder()
    buf = b""
    block = b""
    done_at = None
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.sendall(h2cases.PREFACE + h2cases.frame(h2cases.SETTINGS, 0, 0) + case.frames)
    except OSError:
        obs.closed = True
        sock = None
    while sock is not None:
        now = time.monotonic()
        if done_at is not None and now >= done_at:
            break
        if now >= deadline:
            obs.hang = True
            break
        sock.settimeout(max(0.001, (done_at or deadline) - now))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            chunk = b""
        if not chunk:
            obs.closed = True
            break
        buf += chunk
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                break
            kind, flags, stream = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            payload = buf[9:9 + length]
            buf = buf[9 + length:]
            if kind == h2cases.SETTINGS and not flags & 1:
                try:
                    sock.sendall(h2cases.frame(h2cases.SETTINGS, 1, 0))
                except OSError:
                    pass
            elif kind == h2cases.GOAWAY:
                obs.h2_goaway = int.from_bytes(payload[4:8], "big")
                done_at = done_at or time.monotonic() + FORWARD_GRACE
            elif kind in (h2cases.HEADERS, h2cases.CONTINUATION):
                if kind == h2cases.HEADERS:
                    pad = payload[0] if flags & h2cases.PADDED else 0
                    payload = payload[1 if flags & h2cases.PADDED else 0:len(payload) - pad]
                    payload = payload[5:] if flags & 0x20 else payload  # PRIORITY
                    block = b""
                block += payload
                if flags & h2cases.END_HEADERS:
                    fields = decoder.decode(block, raw=True)
                    if stream == 1 and not obs.responses:
                        response = H2Response(fields)
                        if 100 <= response.status < 200:
                            obs.interim.append(response)
                        else:
                            obs.responses.append(response)
                if stream == 1 and flags & h2cases.END_STREAM:
                    done_at = done_at or time.monotonic() + FORWARD_GRACE
            elif kind == h2cases.DATA and stream == 1:
                if obs.responses:
                    obs.responses[0].body += payload
                if flags & h2cases.END_STREAM:
                    done_at = done_at or time.monotonic() + FORWARD_GRACE
            elif kind == h2cases.RST_STREAM and stream == 1:
                obs.h2_reset = int.from_bytes(payload[:4], "big")
                done_at = done_at or time.monotonic() + FORWARD_GRACE
    if sock is not None:
        sock.close()
    obs.elapsed = time.monotonic() - start
    time.sleep(FORWARD_GRACE)  # what the proxy sent the backend before giving up reaches it
    record, closed_some = backend.end_case()
    obs.backend = record
    if closed_some:
        time.sleep(0.05)
    return obs


def run_proxy(name, selected, timeout, port_base=None, progress=None):
    """Starts the backend and the proxy `name`, runs `selected` cases; returns (results, note)."""
    fixed = None
    ports = None
    if port_base:
        fixed = {"default": port_base, "api": port_base + 1}
        ports = (port_base + 2, port_base + 3)
    backend = backend_mod.RecordingBackend(("default", "api"), fixed_ports=fixed)
    proxy = None
    results = []
    note = ""
    try:
        proxy = proxies.Proxy(name, backend.ports["default"], backend.ports["api"], ports=ports)
        for case in selected:
            if isinstance(case, h2cases.H2Case):
                obs = run_h2_case(case, proxy.port, backend, timeout)
            else:
                obs = run_case(case, proxy.port, backend, timeout)
            category, reason = verdicts.judge(case, obs)
            if not proxy.alive():
                category, reason = verdicts.FAIL, "proxy died: " + proxy.logs()[-300:]
            results.append(Result(case, category, reason, obs))
            if progress:
                progress(name, case, category, reason)
            if not proxy.alive():
                note = "%s died during %s" % (name, case.id)
                break
    finally:
        if proxy is not None:
            code = proxy.stop()
            if name == "spillway" and code not in (0, None):
                note = (note + "; " if note else "") + "spillway exited %s: %s" % (code, proxy.logs()[-500:])
            proxy.cleanup()
        backend.stop()
    return results, note


def summarize(results):
    passes = sum(1 for r in results if r.category in (verdicts.PASS, verdicts.PASS_RFC))
    ambiguous = sum(1 for r in results if r.category == verdicts.AMBIGUOUS)
    return passes, ambiguous


def run(names, selected, timeout=3.0, port_base=None, verbose=False, out=sys.stdout):
    """Runs every proxy in `names` side by side; returns {name: (results, note)}."""
    lock = threading.Lock()

    def progress(name, case, category, reason):
        if verbose:
            with lock:
                print("  %-8s %-40s %-9s %s" % (name, case.id, category, reason[:150]), file=out, flush=True)

    outcome = {}
    threads = []
    for i, name in enumerate(names):
        base = port_base + 10 * i if port_base else None

        def work(name=name, base=base):
            try:
                outcome[name] = run_proxy(name, selected, timeout, base, progress)
            except Exception as e:  # a proxy that cannot start is reported, not fatal for the others
                outcome[name] = ([], "%s: %s" % (name, e))

        t = threading.Thread(target=work, name=name)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    return outcome


def table(names, selected, outcome):
    """The per-case comparison table, as lines."""
    lines = ["%-40s %s" % ("case", " ".join("%-10s" % n for n in names))]
    by_name = {n: {r.case.id: r for r in outcome[n][0]} for n in names}
    for case in selected:
        cells = []
        for n in names:
            r = by_name[n].get(case.id)
            cells.append("%-10s" % (r.category if r else "-"))
        lines.append("%-40s %s" % (case.id, " ".join(cells)))
    return lines


def summary_line(names, selected, outcome):
    parts = []
    for n in names:
        results, note = outcome[n]
        if not results:
            parts.append("%s skipped (%s)" % (n, note))
            continue
        passes, ambiguous = summarize(results)
        parts.append("%s %d/%d (%d ambiguous)" % (n, passes, len(selected), ambiguous))
    return "  ".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proxy", default="all", choices=PROXIES + ("all",))
    parser.add_argument("--verbose", "-v", action="store_true", help="print every case as it runs, with the reason")
    parser.add_argument("--case", action="append", default=[], help="run only cases whose id starts with this (repeatable)")
    parser.add_argument("--timeout", type=float, default=3.0, help="per-case deadline in seconds (a hang fails)")
    parser.add_argument("--port-base", type=int, default=0, help="fixed ports from here (4 per proxy, 10 apart); default: kernel-chosen")
    parser.add_argument("--failures", action="store_true", help="list each proxy's failing cases with reasons")
    parser.add_argument("--h2", action="store_true", help="the HTTP/2 corpus (h2cases.py) instead of the HTTP/1 one")
    args = parser.parse_args(argv)

    names = list(PROXIES) if args.proxy == "all" else [args.proxy]
    if args.h2 and "nginx" in names:
        # NGINX's cleartext listener speaks HTTP/2 (`http2`) or HTTP/1.1, not both; the corpus's
        # proxies serve both on one port.
        print("nginx skipped: no HTTP/2 prior knowledge beside HTTP/1.1 on one cleartext listener")
        names.remove("nginx")
    runnable = []
    for n in names:
        why = proxies.available(n)
        if why:
            print("%s skipped: %s" % (n, why))
        else:
            runnable.append(n)
    if not runnable:
        return 2
    corpus = h2cases.H2_CASES if args.h2 else cases_mod.CASES
    selected = [c for c in corpus if not args.case or any(c.id.startswith(p) for p in args.case)]
    start = time.monotonic()
    outcome = run(runnable, selected, args.timeout, args.port_base or None, args.verbose)
    print("\n".join(table(runnable, selected, outcome)))
    if args.failures or args.verbose:
        for n in runnable:
            print("\n%s: cases not passed" % n)
            for r in outcome[n][0]:
                if r.category in (verdicts.FAIL, verdicts.AMBIGUOUS):
                    print("  %-40s %-9s %s" % (r.case.id, r.category, r.reason[:300]))
    for n in runnable:
        if outcome[n][1]:
            print("note: " + outcome[n][1])
    print("\n%s   (%d cases, %.1f s)" % (summary_line(runnable, selected, outcome), len(selected), time.monotonic() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
