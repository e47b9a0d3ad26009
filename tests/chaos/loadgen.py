"""A small closed-loop HTTP load generator for chaos tests (stdlib only).

N threads each keep one keep-alive connection and send GETs back to back, recording every outcome
with its time, until stopped or until `max_seconds` pass (it always stops by itself).
"""

import http.client
import threading
import time


class Load:
    def __init__(self, port, threads=8, path="/", timeout=5.0, max_seconds=60.0, retry_stale=False):
        """`retry_stale`: like browsers and urllib3, resend a request once on a new connection when a
        reused keep-alive connection turns out closed before any answer (the race every HTTP/1.1
        server has when it closes an idle connection). Counted in `stale_retries`."""
        self.port = port
        self.retry_stale = retry_stale
        self.stale_retries = 0
        self.path = path
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.results = []  # (start time, latency s, status or None, error text or None, headers)
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self):
        self.started = time.monotonic()
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(self.timeout + 5)
        return self

    def _run(self):
        conn = None
        deadline = time.monotonic() + self.max_seconds
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            t0 = time.monotonic()
            status = error = None
            headers = {}
            reused = conn.sock is not None
            for attempt in (1, 2):
                try:
                    conn.request("GET", self.path)
                    r = conn.getresponse()
                    r.read()
                    status = r.status
                    headers = {k.lower(): v for k, v in r.getheaders()}
                    if r.getheader("connection", "").lower() == "close":
                        conn.close()
                        conn = None
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                    if self.retry_stale and reused and attempt == 1:
                        with self.lock:
                            self.stale_retries += 1
                        reused = False
                        continue
                    error = "%s: %s" % (type(e).__name__, e)
                    conn = None
                    break
                except Exception as e:  # noqa: BLE001 - every failure is a data point here
                    error = "%s: %s" % (type(e).__name__, e)
                    conn.close()
                    conn = None
                    break
            with self.lock:
                self.results.append((t0, time.monotonic() - t0, status, error, headers))
        if conn is not None:
            conn.close()

    # --- summaries ---
    def snapshot(self):
        with self.lock:
            return list(self.results)

    def count(self):
        return len(self.snapshot())

    def failures(self, since=None, until=None):
        """Results that are not a 2xx answer (an error status, or no answer at all)."""
        return [r for r in self.snapshot()
                if (since is None or r[0] >= since) and (until is None or r[0] < until)
                and (r[2] is None or r[2] >= 300)]

    def successes_after(self, t):
        return [r for r in self.snapshot() if r[0] >= t and r[2] is not None and r[2] < 300]
