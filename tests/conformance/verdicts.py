"""Expected verdicts and the judge that compares them with what the client and the backend saw.

A case lists one or more acceptable verdicts; it passes when any of them holds. A verdict marked
`rfc_only=True` is allowed by RFC 9110/9112 but not by Spillway's SPEC (which is stricter, e.g.
it rejects bare LF instead of normalizing it): it scores as a pass for every proxy, and the Spillway
unit test treats it as a failure.

Before any verdict is tried, the judge looks for the worst outcome, `ambiguous`: the backend got
bytes its strict parser refuses (CL+TE, duplicate CL, bare LF, obs-fold, bad chunking...), more
complete requests reached it than the client saw answered by it or than the client sent, or the
client got a response whose framing can be read two ways.
"""

PASS = "pass"
PASS_RFC = "pass-rfc"  # a pass under an rfc_only verdict
FAIL = "fail"
AMBIGUOUS = "ambiguous"

FRAMING_TRAILERS = ("content-length", "transfer-encoding", "host")


class Observation:
    """What happened in one case: filled in by run.py."""

    def __init__(self):
        self.responses = []  # final responses (httpmsg.Message), each with .from_backend
        self.interim = []  # 1xx responses
        self.closed = False  # the proxy closed the connection
        self.hang = False  # the per-case deadline passed while an answer was still due
        self.client_error = None  # a response the client could not frame one way only
        self.leftover = b""  # bytes after the last complete response (a truncated one)
        self.backend = None  # backend.CaseRecord
        self.elapsed = 0.0
        self.h2_reset = None  # HTTP/2 cases: the RST_STREAM error code on the request's stream
        self.h2_goaway = None  # HTTP/2 cases: the GOAWAY error code


class Verdict:
    rfc_only = False

    def responses(self, case):
        """How many final responses the client waits for under this verdict."""
        return 1

    def check(self, case, obs):
        """None when the verdict holds, else why not."""
        raise NotImplementedError


class Forward(Verdict):
    """The request(s) reach the backend and its answers reach the client.

    Checks on the first forwarded request (or, with `each`, a dict of checks per request):
    `body` bytes, `host` (case-insensitive), `target`, `method`, `version`, `absent` header names,
    `present` {name: value or None}, `trailers` [(name, value)] that must arrive, `listener` (which
    backend listener got it), `notes_ok`
    (irregular-but-harmless bytes allowed); `close_after`: the client connection must be closed
    after the answer (RFC 9112 6.3 for a message with CL and TE); `status`: the status the client
    must see (200 from the recording backend; 101 for an upgrade)."""

    def __init__(self, requests=None, close_after=False, rfc_only=False, status=200, each=None, **checks):
        self.requests = requests
        self.close_after = close_after
        self.rfc_only = rfc_only
        self.status = status
        self.each = each
        self.checks = checks

    def count(self, case):
        return self.requests if self.requests is not None else case.requests

    def responses(self, case):
        return self.count(case)

    def check(self, case, obs):
        n = self.count(case)
        got = obs.backend.requests
        if len(got) != n:
            return "backend got %d requests, expected %d" % (len(got), n)
        if len(obs.responses) != n:
            return "client got %d responses (%s), expected %d" % (
                len(obs.responses),
                ",".join(str(r.status) for r in obs.responses),
                n,
            )
        for r in obs.responses:
            if not r.from_backend or r.status != self.status:
                return "client got %d%s, expected %d from the backend" % (
                    r.status,
                    "" if r.from_backend else " from the proxy",
                    self.status,
                )
        if obs.hang:
            return "hang"
        if self.close_after and not obs.closed:
            return "connection not closed after the answer"
        per_request = self.each or [self.checks] + [{}] * (n - 1)
        for i, (req, checks) in enumerate(zip(got, per_request)):
            why = check_request(req, checks)
            if why:
                return "request %d: %s" % (i + 1, why)
        return None


def check_request(req, checks):
    if not checks.get("notes_ok") and req.notes:
        return "forwarded with " + ", ".join(req.notes)
    if "body" in checks and req.body != checks["body"]:
        return "body %r, expected %r" % (req.body[:60], checks["body"][:60])
    if "host" in checks:
        host = req.first("host")
        if host is None or host.lower() != checks["host"].lower():
            return "Host %r, expected %r" % (host, checks["host"])
    for key in ("target", "method", "version", "listener"):
        if key in checks and getattr(req, key) != checks[key]:
            return "%s %r, expected %r" % (key, getattr(req, key), checks[key])
    for name in checks.get("absent", ()):
        if req.get(name):
            return "header %s forwarded: %r" % (name, req.get(name))
    for name, value in checks.get("present", {}).items():
        values = req.get(name)
        if not values:
            return "header %s missing" % name
        if value is not None and value not in values:
            return "header %s is %r, expected %r" % (name, values, value)
    for name, value in checks.get("trailers", ()):
        if not any(n.lower() == name and v == value for n, v in req.trailers):
            return "trailer %s: %s missing (got %r)" % (name, value, req.trailers)
    for name in checks.get("trailers_absent", FRAMING_TRAILERS):
        if any(n == name for n, _ in req.trailers):
            return "trailer %s forwarded" % name
    return None


class Reject(Verdict):
    """The proxy answers with one of `statuses` itself and closes; no complete request reaches the
    backend. With `after=k`, the first k requests are forwarded and answered normally first."""

    def __init__(self, *statuses, after=0, rfc_only=False):
        self.statuses = statuses or (400,)
        self.after = after
        self.rfc_only = rfc_only

    def responses(self, case):
        return self.after + 1

    def check(self, case, obs):
        if len(obs.backend.requests) != self.after:
            return "backend got %d requests, expected %d" % (len(obs.backend.requests), self.after)
        if len(obs.responses) != self.after + 1:
            return "client got %d responses (%s), expected %d" % (
                len(obs.responses),
                ",".join(str(r.status) for r in obs.responses),
                self.after + 1,
            )
        for r in obs.responses[: self.after]:
            if not r.from_backend:
                return "answer %d did not come from the backend (%d)" % (obs.responses.index(r) + 1, r.status)
        last = obs.responses[self.after]
        if last.from_backend:
            return "the request was forwarded (backend answered %d)" % last.status
        if last.status not in self.statuses:
            return "status %d, expected %s" % (last.status, "/".join(map(str, self.statuses)))
        if not obs.closed:
            return "status %d but the connection stayed open" % last.status
        return None


class Close(Verdict):
    """No answer (after the first `after` forwarded ones): the connection is closed, nothing reaches
    the backend."""

    def __init__(self, after=0, rfc_only=False):
        self.after = after
        self.rfc_only = rfc_only

    def responses(self, case):
        return self.after

    def check(self, case, obs):
        if len(obs.backend.requests) != self.after:
            return "backend got %d requests" % len(obs.backend.requests)
        if len(obs.responses) != self.after or obs.leftover:
            return "client got an answer"
        if not obs.closed:
            return "connection not closed"
        return None


class Relay(Verdict):
    """Response cases: the backend's answer reaches the client, framed correctly, with `status`
    and (if given) `body`; `then`: further answers expected from the backend (pipelined)."""

    def __init__(self, status=200, body=None, then=0, rfc_only=False):
        self.status = status
        self.body = body
        self.then = then
        self.rfc_only = rfc_only

    def responses(self, case):
        return 1 + self.then

    def check(self, case, obs):
        if obs.hang:
            return "hang"
        if len(obs.responses) < 1 + self.then:
            return "client got %d responses, expected %d" % (len(obs.responses), 1 + self.then)
        first = obs.responses[0]
        if first.status != self.status or not first.from_backend:
            return "client got %d%s, expected %d from the backend" % (
                first.status,
                "" if first.from_backend else " from the proxy",
                self.status,
            )
        if self.body is not None and first.body != self.body:
            return "body %r, expected %r" % (first.body[:60], self.body[:60])
        for r in obs.responses[1 : 1 + self.then]:
            if not r.from_backend or r.status != 200:
                return "later answer %d%s" % (r.status, "" if r.from_backend else " from the proxy")
        return None


class BadGateway(Verdict):
    """Response cases: the proxy answers 502 itself (never the backend's bytes)."""

    def __init__(self, *statuses, rfc_only=False):
        self.statuses = statuses or (502,)
        self.rfc_only = rfc_only

    def check(self, case, obs):
        if not obs.responses:
            return "no answer" + (" (hang)" if obs.hang else "")
        first = obs.responses[0]
        if first.from_backend or first.status not in self.statuses:
            return "client got %d%s" % (first.status, " from the backend" if first.from_backend else "")
        return None


class Abort(Verdict):
    """Response cases: the backend's answer is cut off and the client connection closed, so the
    client cannot take a truncated or corrupt body for a complete one."""

    def __init__(self, rfc_only=False):
        self.rfc_only = rfc_only

    def check(self, case, obs):
        if not obs.closed:
            return "connection not closed" + (" (hang)" if obs.hang else "")
        if obs.responses:
            return "client got a complete %d" % obs.responses[0].status
        return None


def judge(case, obs):
    """(category, reason): category is PASS, PASS_RFC, FAIL or AMBIGUOUS."""
    record = obs.backend
    if record.errors:
        return AMBIGUOUS, "backend got " + record.errors[0]
    if obs.client_error:
        return AMBIGUOUS, "client got " + obs.client_error
    if case.response is None:
        # A request the proxy forwarded is answered by the backend or, when the proxy disliked the
        # answer, by a gateway error of its own; anything beyond that reached the backend unseen.
        answered = sum(1 for r in obs.responses if r.from_backend or r.status in (502, 503, 504))
        if len(record.requests) > answered:
            return AMBIGUOUS, "backend got %d requests, client saw %d answered by it" % (
                len(record.requests),
                answered,
            )
        if len(record.requests) > case.sent:
            return AMBIGUOUS, "backend got %d requests, client sent %d" % (len(record.requests), case.sent)
    reasons = []
    for verdict in case.expect:
        why = verdict.check(case, obs)
        if why is None:
            return (PASS_RFC if verdict.rfc_only else PASS), ""
        reasons.append("%s: %s" % (type(verdict).__name__, why))
    return FAIL, "; ".join(reasons)
