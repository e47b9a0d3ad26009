"""Tracing through the real binary: W3C traceparent continued and forwarded (a span id per try),
OTLP/HTTP JSON spans received by a collector in the test with the right parent/child links for a
retried request, sampling of new traces, the trace id in the access log, and a collector that is
down or slow costing requests nothing (drops counted)."""

import http.server
import json
import threading
import time
import unittest

from h2client import H2Client
from harness import Spillway, free_port, wait_until
from testd import Testd

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE = "0af7651916cd43dd8448eb211c80319c"


class Collector:
    """An OTLP/HTTP collector: keeps every span POSTed to /v1/traces (and the service name), answers
    200 after `delay` seconds."""

    def __init__(self, delay=0.0):
        self.spans = []
        self.services = set()
        self.posts = 0
        self.chunks = []  # per chunked POST: how many chunks carried its body
        self.delay = delay
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def read_body(self):
                if self.headers["Content-Length"] is not None:
                    return self.rfile.read(int(self.headers["Content-Length"]))
                # Chunked (what Spillway sends): size lines in hex, no extensions or trailers.
                assert self.headers["Transfer-Encoding"] == "chunked", self.headers
                body = b""
                chunks = 0
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    chunk = self.rfile.read(size + 2)
                    assert chunk.endswith(b"\r\n"), chunk[-10:]
                    if size == 0:
                        with outer.lock:
                            outer.chunks.append(chunks)
                        return body
                    body += chunk[:-2]
                    chunks += 1

            def do_POST(self):
                body = self.read_body()
                time.sleep(outer.delay)
                doc = json.loads(body)
                with outer.lock:
                    outer.posts += 1
                    assert self.path == "/v1/traces" and self.headers["Content-Type"] == "application/json"
                    for rs in doc["resourceSpans"]:
                        for a in rs["resource"]["attributes"]:
                            if a["key"] == "service.name":
                                outer.services.add(a["value"]["stringValue"])
                        for ss in rs["scopeSpans"]:
                            outer.spans.extend(ss["spans"])
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def of_trace(self, trace):
        with self.lock:
            return [s for s in self.spans if s["traceId"] == trace]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def attrs(span):
    return {a["key"]: list(a["value"].values())[0] for a in span["attributes"]}


class TracingTest(unittest.TestCase):
    def setUp(self):
        self.collector = Collector()
        self.addCleanup(self.collector.stop)
        self.live = Testd(name="live")
        self.addCleanup(self.live.stop)

    def spillway(self, sample="100%", otlp=None, backends=None, extra=""):
        otlp = otlp or "http://127.0.0.1:%d/v1/traces" % self.collector.port
        backends = backends or [self.live.address]
        return Spillway("""
admin: { listen: 127.0.0.1:{admin_port} }
listeners: [ { listen: 127.0.0.1:{port}, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    balance: round_robin
    health_check: false
    retries: { attempts: 2, on: [connect_failure] }
    backends: [ %s ]
tracing: { sample: %s, otlp: "%s", service_name: edge }
%s""" % (", ".join("{ address: %s }" % b for b in backends), sample, otlp, extra))

    def test_a_retried_request_gives_linked_spans_and_the_backend_the_try_as_parent(self):
        dead_port = free_port()  # nothing listens: the first try fails to connect
        with self.spillway(backends=["127.0.0.1:%d" % dead_port, self.live.address]) as sw:
            code, _, body = sw.request("GET", "/echo", headers={"traceparent": PARENT, "tracestate": "rojo=1"})
            self.assertEqual(code, 200)
            seen = dict((k.lower(), v) for k, v in json.loads(body)["headers"])
            self.assertTrue(wait_until(lambda: len(self.collector.of_trace(TRACE)) == 3, 5), self.collector.spans)
            spans = self.collector.of_trace(TRACE)
            self.assertEqual(self.collector.services, {"edge"})
            server = [s for s in spans if s["kind"] == 2]
            tries = sorted((s for s in spans if s["kind"] == 3), key=lambda s: attrs(s)["spillway.try"])
            self.assertEqual(len(server), 1)
            self.assertEqual(len(tries), 2)
            server = server[0]
            # The caller's span is Spillway's parent; Spillway's span is every try's parent.
            self.assertEqual(server["parentSpanId"], "b7ad6b7169203331")
            for t in tries:
                self.assertEqual(t["parentSpanId"], server["spanId"])
                self.assertNotEqual(t["spanId"], server["spanId"])
                self.assertLessEqual(int(server["startTimeUnixNano"]), int(t["startTimeUnixNano"]))
                self.assertLessEqual(int(t["endTimeUnixNano"]), int(server["endTimeUnixNano"]))
            self.assertNotEqual(tries[0]["spanId"], tries[1]["spanId"])
            a = attrs(server)
            self.assertEqual((a["http.request.method"], a["url.path"], a["spillway.upstream"],
                              a["http.response.status_code"]), ("GET", "/echo", "app", "200"))
            # Said once: which backend and how many tries are the children's to tell.
            self.assertNotIn("spillway.backend", a)
            self.assertNotIn("spillway.tries", a)
            # The X-Request-Id Spillway made up is the access log's to tell, not the span's.
            self.assertNotIn("spillway.request_id", a)
            # Names of few values (OpenTelemetry's advice): the method and the upstream, the method.
            self.assertEqual((server["name"], tries[0]["name"], tries[1]["name"]), ("GET app", "GET", "GET"))
            first, second = attrs(tries[0]), attrs(tries[1])
            self.assertEqual(first["spillway.backend"], "127.0.0.1:%d" % dead_port)
            self.assertEqual(first["error.type"], "upstream_connect_failure")
            self.assertEqual(tries[0]["status"]["code"], 2)
            self.assertEqual(second["spillway.backend"], self.live.address)
            self.assertEqual(second["spillway.retry_reason"], "upstream_connect_failure")
            self.assertEqual(second["http.response.status_code"], "200")
            # The backend saw the trace with the second try's span as its parent, and the tracestate.
            self.assertEqual(seen["traceparent"], "00-%s-%s-01" % (TRACE, tries[1]["spanId"]))
            self.assertEqual(seen["tracestate"], "rojo=1")
            # The collector keeps the spans before it answers; Spillway counts them when the answer
            # comes back, a moment later.
            exported = 'spillway_tracing_spans_total{result="exported"}'
            self.assertTrue(wait_until(lambda: sw.metric(exported) == 3, 5), sw.metric(exported))

    def test_sampling_new_traces_and_honouring_the_callers_flag(self):
        with self.spillway(sample="0%") as sw:
            body = sw.request("GET", "/echo", headers={"tracestate": "stale=1"})[2]
            seen = dict((k.lower(), v) for k, v in json.loads(body)["headers"])
            version, trace, span, flags = seen["traceparent"].split("-")
            self.assertEqual((version, len(trace), len(span), flags), ("00", 32, 16, "00"))  # new, not sampled
            self.assertNotIn("tracestate", seen)  # it belonged to no trace we continued
            # A sampled caller is honoured even at 0%; over HTTP/2 as well.
            h2 = H2Client(sw.port)
            try:
                s = h2.get("/echo", headers=[("traceparent", PARENT), ("x-request-id", "req-42")])
                self.assertEqual(s.status, 200)
            finally:
                h2.close()
            self.assertTrue(wait_until(lambda: len(self.collector.of_trace(TRACE)) == 2, 5))
            time.sleep(1.5)  # an export runs every second: the unsampled request's spans would be in by now
            with self.collector.lock:
                self.assertEqual({s["traceId"] for s in self.collector.spans}, {TRACE})
            # One try: its span has no number (there is nothing to tell it from).
            (one_try,) = [s for s in self.collector.of_trace(TRACE) if s["kind"] == 3]
            self.assertNotIn("spillway.try", attrs(one_try))
            self.assertIn("spillway.backend", attrs(one_try))
            # The client's own X-Request-Id is on the request's span, to find the trace by.
            (server,) = [s for s in self.collector.of_trace(TRACE) if s["kind"] == 2]
            self.assertEqual(attrs(server)["spillway.request_id"], "req-42")

    def test_spans_from_many_worker_buffers_arrive_whole_in_one_post(self):
        # A worker hands its records over every 128 spans; one POST's body is one chunk per
        # hand-over, each written as JSON on its own: the joins between them must hold.
        requests = 600
        with self.spillway(extra="workers: 2\n") as sw:
            c = sw.conn(10)
            try:
                for _ in range(requests):
                    c.request("GET", "/", headers={"Connection": "keep-alive"})
                    r = c.getresponse()
                    r.read()
                    self.assertEqual(r.status, 200)
            finally:
                c.close()
            self.assertTrue(wait_until(lambda: len(self.collector.spans) >= 2 * requests, 10),
                            len(self.collector.spans))
            time.sleep(1.2)  # nothing more comes
            with self.collector.lock:
                spans = list(self.collector.spans)
                chunks = list(self.collector.chunks)
            self.assertEqual(len(spans), 2 * requests)
            self.assertEqual(len({s["spanId"] for s in spans}), 2 * requests)
            self.assertEqual(sum(1 for s in spans if s["kind"] == 2), requests)
            self.assertGreater(max(chunks), 1, chunks)  # the join between two buffers was tested
            exported = 'spillway_tracing_spans_total{result="exported"}'
            self.assertTrue(wait_until(lambda: sw.metric(exported) == 2 * requests, 5), sw.metric(exported))

    def test_the_trace_id_is_in_the_access_log(self):
        with self.spillway(extra="access_log: { path: \"-\" }\n") as sw:
            sw.request("GET", "/", headers={"traceparent": PARENT})
            self.assertTrue(wait_until(lambda: '"trace_id":"%s"' % TRACE in sw.logs(), 5), sw.logs())

    def test_a_collector_down_or_slow_costs_requests_nothing(self):
        port = free_port()  # no collector there
        with self.spillway(otlp="http://127.0.0.1:%d/v1/traces" % port) as sw:
            start = time.monotonic()
            for _ in range(50):
                self.assertEqual(sw.request("GET", "/")[0], 200)
            elapsed = time.monotonic() - start
            self.assertTrue(wait_until(
                lambda: sw.metric('spillway_tracing_spans_total{result="dropped_export_failed"}', 0) >= 100, 10),
                sw.logs())
            self.assertIn("cannot export spans", sw.logs())
            print("\nTRACING: 50 requests with the collector down took %.3f s" % elapsed)
        slow = Collector(delay=2.0)
        self.addCleanup(slow.stop)
        with self.spillway(otlp="http://127.0.0.1:%d/v1/traces" % slow.port) as sw:
            # A reload changes the exporter's settings in place.
            with open(sw.config_path) as f:
                text = f.read()
            sw.write_config(text.replace("service_name: edge", "service_name: edge, max_queue: 10"))
            self.assertEqual(sw.admin("POST", "/reload")[0], 200)
            for _ in range(40):
                self.assertEqual(sw.request("GET", "/")[0], 200)
            self.assertTrue(wait_until(
                lambda: sw.metric('spillway_tracing_spans_total{result="dropped_queue_full"}', 0) > 0, 10), sw.logs())
            status = sw.status()["tracing"]
            self.assertGreater(status["spans_dropped_queue_full"], 0)


if __name__ == "__main__":
    unittest.main()
