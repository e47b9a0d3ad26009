"""config/grafana-dashboard.json against the real /metrics.

Every metric name a panel queries must be one Spillway exports, with the labels the query filters
and groups by: a renamed metric, a typo or a label that does not exist would leave a panel silently
empty in Grafana, and fails here instead. The dashboard's structure is checked too (a Grafana 10
JSON model with the Prometheus data source as the variable DS_PROMETHEUS, an `upstream` variable,
panels that do not overlap), and a misspelled copy of the dashboard is shown to fail the check.
"""

import copy
import json
import os
import re
import unittest

from harness import REPO, Spillway, free_port
from testd import Testd

DASHBOARD = os.path.join(REPO, "config", "grafana-dashboard.json")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Metric families the dashboard must chart (the panels an operator looks for).
REQUIRED = {
    "spillway_upstream_requests_total", "spillway_upstream_request_duration_seconds",
    "spillway_upstream_connect_duration_seconds", "spillway_backend_up", "spillway_backend_healthy",
    "spillway_backend_ejected", "spillway_breaker_state", "spillway_breaker_transitions_total",
    "spillway_ejections_total", "spillway_retries_total", "spillway_upstream_overflow_total",
    "spillway_config_reloads_total", "spillway_config_last_reload_success", "spillway_listener_connections_active",
}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
                "unless", "le"}


# ---------------- the dashboard ----------------

def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def all_panels(dashboard):
    """Every panel, rows' nested panels included."""
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def expressions(dashboard):
    """(where, expr) for every `expr` anywhere in the dashboard, and the template variables' queries."""
    out = []

    def walk(node, where):
        if isinstance(node, dict):
            title = node.get("title") or node.get("name") or where
            for k, v in node.items():
                if k == "expr" and isinstance(v, str):
                    out.append((title, v))
                else:
                    walk(v, title)
        elif isinstance(node, list):
            for v in node:
                walk(v, where)

    walk(dashboard, "dashboard")
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var.get("query")
            out.append(("variable " + var["name"], q.get("query", "") if isinstance(q, dict) else q or ""))
    return out


def family(name):
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# ---------------- /metrics ----------------

def parse_metrics(text):
    """({sample name: [labels dict, ...]}, {family: type})."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            types[name] = kind.strip()
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$", line)
        if not m:
            raise AssertionError("unparsable /metrics line: %r" % line)
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples.setdefault(m.group(1), []).append(labels)
    return samples, types


# ---------------- the check ----------------

def substitute(expr):
    """Grafana's variables replaced the way a query runs with "All" selected."""
    return (expr.replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("${DS_PROMETHEUS}", "")
            .replace('"$instance"', '".*"').replace('"$upstream"', '".*"'))


def problems_with(dashboard, metrics_text):
    """What in the dashboard's queries does not match what /metrics serves: a list of sentences."""
    samples, types = parse_metrics(metrics_text)
    problems = []
    used = set()
    for where, raw in expressions(dashboard):
        expr = substitute(raw)
        if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
            problems.append("%s: unbalanced brackets in %r" % (where, raw))
        names = set(re.findall(r"\bspillway_[a-z0-9_]+", expr))
        if not names:
            problems.append("%s: queries no spillway_ metric: %r" % (where, raw))
        for name in names:
            used.add(family(name))
            fam = family(name)
            if name != fam and types.get(fam) != "histogram":
                problems.append("%s: %s is not a series of a histogram family in /metrics" % (where, name))
            elif name not in samples and not (types.get(name) == "histogram" and name + "_bucket" in samples):
                problems.append("%s: %s is not in /metrics" % (where, name))
        present = [s for n in names for s in samples.get(n, [])]
        known_labels = set().union(*[set(s) for s in present]) | {"instance", "job"} if present else set()
        # Label matchers: the label must exist on the metric; an exact value must be one it takes.
        for name, matchers in re.findall(r"\b(spillway_[a-z0-9_]+)\{([^}]*)\}", expr):
            rows = samples.get(name, [])
            for label, op, value in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"', matchers):
                if label in ("instance", "job") or not rows:
                    continue
                if not any(label in r for r in rows):
                    problems.append("%s: %s has no label %r" % (where, name, label))
                elif op == "=" and not any(r.get(label) == value for r in rows):
                    problems.append("%s: %s never has %s=%r (it has %s)" % (
                        where, name, label, value, sorted({r.get(label) for r in rows if label in r})))
        # Grouping labels (by/without/on/ignoring) must exist on a metric of the expression.
        for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
            for label in [l.strip() for l in group.split(",") if l.strip()]:
                if present and label not in known_labels:
                    problems.append("%s: groups by %r, which no metric in %r has" % (where, label, raw))
        if "histogram_quantile" in expr:
            for name in names:
                if name.endswith("_bucket") and not all("le" in r for r in samples.get(name, [{}])):
                    problems.append("%s: %s samples without `le`" % (where, name))
            if not re.search(r"histogram_quantile\(\s*0?\.\d+\s*,\s*sum by \([^)]*\ble\b", expr):
                problems.append("%s: histogram_quantile without sum by (le, ...): %r" % (where, raw))
    for fam in sorted(REQUIRED - used):
        problems.append("the dashboard queries nothing from %s" % fam)
    return problems


class GrafanaDashboardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dashboard = load_dashboard()
        cls.a = Testd(name="a")
        cls.b = Testd(name="b")
        cls.dead = free_port()  # nothing listens: connect failures, 5xx, an unhealthy backend
        cls.sw = Spillway("""
workers: 2
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - name: public
    listen: 127.0.0.1:{port}
    routes:
      - { match: { path_prefix: /dead }, upstream: dead }
      - { upstream: app }
upstreams:
  - name: app
    backends: [ { address: %s }, { address: %s } ]
    health_check: { http: { path: /healthz }, interval: 500ms, timeout: 300ms }
  - name: dead
    health_check: false
    backends: [ { address: 127.0.0.1:%d } ]
""" % (cls.a.address, cls.b.address, cls.dead))
        for i in range(30):
            status, _, _ = cls.sw.request("GET", "/x%d" % i)
            assert status == 200, status
        for _ in range(3):
            status, _, _ = cls.sw.request("GET", "/dead")
            assert status in (502, 503), status
        # A request is counted when its response is done, which can be a moment after the client
        # has read it: wait for the last ones rather than race them.
        cls.sw.wait_metric('spillway_upstream_requests_total{upstream="dead",code="5xx"}', 3)
        cls.sw.wait_metric('spillway_upstream_requests_total{upstream="app",code="2xx"}', 30)
        code, body = cls.sw.admin("GET", "/metrics")
        assert code == 200
        cls.metrics = body.decode()

    @classmethod
    def tearDownClass(cls):
        cls.sw.stop()
        cls.a.stop()
        cls.b.stop()

    def test_every_queried_metric_is_exported(self):
        exprs = expressions(self.dashboard)
        self.assertGreater(len(exprs), 20)
        self.assertEqual(problems_with(self.dashboard, self.metrics), [])

    def test_traffic_reached_the_counters_the_dashboard_charts(self):
        samples, _ = parse_metrics(self.metrics)

        def value(name, **labels):
            for line in self.metrics.splitlines():
                m = re.match(r"^" + re.escape(name) + r"\{(.*)\} (\S+)$", line)
                if m and all('%s="%s"' % kv in m.group(1) for kv in labels.items()):
                    return float(m.group(2))
            raise KeyError((name, labels))

        self.assertGreaterEqual(value("spillway_upstream_requests_total", upstream="app", code="2xx"), 30)
        self.assertGreaterEqual(value("spillway_upstream_requests_total", upstream="dead", code="5xx"), 3)
        self.assertGreaterEqual(value("spillway_upstream_request_duration_seconds_count", upstream="app"), 30)
        self.assertGreaterEqual(value("spillway_upstream_connect_duration_seconds_count", upstream="app"), 1)
        self.assertIn("spillway_breaker_state", samples)

    def test_a_misspelled_metric_or_label_fails_the_check(self):
        for bad in ("spillway_backend_upp", "spillway_upstream_request_duration_second_bucket",
                    "spillway_upstream_requests_total_bucket"):
            broken = copy.deepcopy(self.dashboard)
            target = next(p for p in all_panels(broken) if p.get("targets"))["targets"][0]
            target["expr"] = target["expr"].replace(re.findall(r"spillway_[a-z0-9_]+", target["expr"])[0], bad, 1)
            problems = problems_with(broken, self.metrics)
            self.assertTrue(any(bad in p for p in problems), (bad, problems))
        broken = copy.deepcopy(self.dashboard)
        panel = next(p for p in all_panels(broken) if "5xx" in json.dumps(p.get("targets", [])))
        for t in panel["targets"]:
            t["expr"] = t["expr"].replace('code="5xx"', 'code="500"')
        self.assertTrue(any("code='500'" in p for p in problems_with(broken, self.metrics)))
        broken = copy.deepcopy(self.dashboard)
        panel = next(p for p in all_panels(broken) if "by (upstream)" in json.dumps(p.get("targets", [])))
        for t in panel["targets"]:
            t["expr"] = t["expr"].replace("by (upstream)", "by (upstreams)")
        self.assertTrue(any("'upstreams'" in p for p in problems_with(broken, self.metrics)))
        broken = copy.deepcopy(self.dashboard)
        for p in all_panels(broken):
            p["targets"] = [t for t in p.get("targets", []) if "spillway_breaker_state" not in t["expr"]]
        self.assertIn("the dashboard queries nothing from spillway_breaker_state", problems_with(broken, self.metrics))

    def test_dashboard_structure(self):
        d = self.dashboard
        self.assertEqual(d["title"], "Spillway")
        self.assertTrue(d.get("uid"))
        self.assertGreaterEqual(d["schemaVersion"], 36, "a Grafana 10 JSON model")
        variables = {v["name"]: v for v in d["templating"]["list"]}
        self.assertEqual(variables["DS_PROMETHEUS"]["type"], "datasource")
        self.assertEqual(variables["DS_PROMETHEUS"]["query"], "prometheus")
        up = variables["upstream"]
        self.assertEqual(up["type"], "query")
        self.assertEqual(up["query"]["query"], "label_values(spillway_upstream_requests_total, upstream)")
        self.assertEqual(up["datasource"], {"type": "prometheus", "uid": "${DS_PROMETHEUS}"})

        panels = all_panels(d)
        ids = [p["id"] for p in panels]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are unique")
        occupied = {}
        known_types = {"row", "timeseries", "stat", "table", "state-timeline", "bargauge", "gauge", "text"}
        for p in panels:
            self.assertIn(p["type"], known_types, p.get("title"))
            self.assertTrue(p.get("title"), p)
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    self.assertNotIn((x, y), occupied, "%r overlaps %r" % (p["title"], occupied.get((x, y))))
                    occupied[(x, y)] = p["title"]
            if p["type"] == "row":
                continue
            self.assertEqual(p["datasource"], {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"])
            self.assertTrue(p["targets"], p["title"])
            refs = [t["refId"] for t in p["targets"]]
            self.assertEqual(len(refs), len(set(refs)), p["title"])
            for t in p["targets"]:
                self.assertEqual(t["datasource"], {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"])
                if "upstream=" in t["expr"]:
                    self.assertIn('upstream=~"$upstream"', t["expr"], p["title"])
        titles = " | ".join(p["title"].lower() for p in panels)
        for words in ("request rate", "error ratio", "p50 / p98 / p99", "connect time p99", "backend state",
                      "breaker transitions", "ejections", "retries", "overflows", "config reloads", "last reload",
                      "listener connections"):
            self.assertIn(words, titles)


if __name__ == "__main__":
    unittest.main()
