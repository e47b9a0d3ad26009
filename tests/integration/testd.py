"""Start and steer spillway-testd backends from Python tests (stdlib only).

    with Testd(name="a", latency="10ms") as backend:
        backend.address            # "127.0.0.1:PORT"
        backend.set(healthy=0)     # /_testd/set, returns the new settings
        backend.stats()["requests"]
        backend.kill()             # SIGKILL: a crash
        backend.restart()          # same port again

The binary comes from $SPILLWAY_TESTD_BIN (CTest sets it), else build/spillway-testd in the repository.
Only processes started here are ever signalled, by PID; any still running at interpreter exit are
killed, so a failing test cannot leave backends behind.
"""

import atexit
import http.client
import json
import os
import selectors
import signal
import subprocess
import tempfile
import time
import urllib.parse

DEFAULT_BIN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "build",
                           "spillway-testd")

_running = set()


def testd_binary():
    return os.environ.get("SPILLWAY_TESTD_BIN", DEFAULT_BIN)


@atexit.register
def _kill_leftovers():
    for backend in list(_running):
        backend.kill()


class TestdError(RuntimeError):
    pass


class Testd:
    """One spillway-testd process.

    Keyword options map to command-line flags: name="a" -> --name a, error_rate=10 ->
    --error-rate 10, chunked=True -> --chunked; None and False leave a flag out.
    """

    def __init__(self, port=0, host="127.0.0.1", binary=None, start=True, startup_timeout=10.0, **options):
        self.host = host
        self.port = port
        self.binary = binary or testd_binary()
        self.options = options
        self.startup_timeout = startup_timeout
        self.proc = None
        self._paused = False
        if start:
            self.start()

    # ----- lifecycle -------------------------------------------------------------------------

    def command(self):
        cmd = [self.binary, "--listen", f"{self.host}:{self.port}"]
        for key, value in self.options.items():
            flag = "--" + key.replace("_", "-")
            if value is None or value is False:
                continue
            if value is True:
                cmd.append(flag)
            else:
                cmd += [flag, str(value)]
        return cmd

    def start(self):
        """Starts the process and waits for its `listening HOST:PORT` line."""
        if self.running:
            raise TestdError(f"testd already running as pid {self.proc.pid}")
        stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=stderr)
        _running.add(self)
        self._paused = False
        line = self._read_listening_line()
        if line is None:
            self.kill()
            stderr.seek(0)
            message = stderr.read().decode(errors="replace").strip()
            stderr.close()
            raise TestdError(f"testd did not start ({' '.join(self.command())}): {message or 'no output'}")
        stderr.close()
        self.port = int(line.rsplit(":", 1)[1])
        return self

    def _read_listening_line(self):
        # Bounded wait: a backend that neither prints nor exits must fail the test, not hang it.
        deadline = time.monotonic() + self.startup_timeout
        data = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in data:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    return None
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    return None
                data += chunk
        self.proc.stdout.close()
        line = data.split(b"\n", 1)[0].decode()
        if not line.startswith("listening "):
            return None
        return line

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def url(self, path="/"):
        return f"http://{self.address}{path}"

    def kill(self):
        """SIGKILL, like a crash: open connections are reset or left half-open by the kernel."""
        self._signal(signal.SIGKILL)
        self._reap(10)

    def stop(self, timeout=10.0):
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.running:
            self._signal(signal.SIGTERM)
            if self._paused:
                # A stopped process only acts on SIGTERM once it runs again.
                self._signal(signal.SIGCONT)
        return self._reap(timeout)

    def pause(self):
        """SIGSTOP: the backend keeps its sockets but answers nothing (a hung server)."""
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self):
        self._signal(signal.SIGCONT)
        self._paused = False

    def restart(self, retry_for=5.0):
        """Stops (if running) and starts again on the same port, retrying while it is still busy."""
        if self.running:
            self.stop()
        deadline = time.monotonic() + retry_for
        while True:
            try:
                return self.start()
            except TestdError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _signal(self, sig):
        if self.running:
            os.kill(self.proc.pid, sig)

    def _reap(self, timeout):
        if self.proc is None:
            return None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()
        _running.discard(self)
        self._paused = False
        return code

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __repr__(self):
        state = "running" if self.running else "stopped"
        return f"<Testd {self.options.get('name', 'testd')} {self.address} pid={self.pid} {state}>"

    # ----- HTTP helpers ----------------------------------------------------------------------

    def request(self, method, path, body=None, headers=None, timeout=5.0):
        """One request on a fresh connection. Returns (status, headers as a list of pairs, body)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def get(self, path="/", **kw):
        return self.request("GET", path, **kw)

    def _control(self, path, params=None):
        query = ""
        if params:
            query = "?" + urllib.parse.urlencode({k: _param(v) for k, v in params.items()})
        status, _, body = self.get(path + query)
        decoded = json.loads(body)
        if status != 200:
            raise TestdError(f"{path}{query}: {status} {decoded}")
        return decoded

    def set(self, **settings):
        """Changes runtime defaults: latency="250ms", status=503, error_rate=10, error_status=502,
        healthy=False, size=1024 (or -1 for the name body), chunked=True. Returns the new settings."""
        return self._control("/_testd/set", settings)

    def settings(self):
        return self._control("/_testd/set")

    def stats(self):
        """{"name", "requests", "connections_accepted", "connections_active", "healthz_requests",
        "errors_injected"}; requests excludes /healthz and /_testd/* calls."""
        return self._control("/_testd/stats")

    def reset_stats(self):
        return self._control("/_testd/reset_stats")


def _param(value):
    if value is True:
        return "1"
    if value is False:
        return "0"
    return str(value)
