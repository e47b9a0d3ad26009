"""The conformance corpus as a test: Spillway must pass every case (SPEC's stricter verdict where
the RFCs allow two) and never forward anything ambiguous; with HAProxy and NGINX installed, it must
score at least as high as both in the same run."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cases  # noqa: E402
import proxies  # noqa: E402
import run  # noqa: E402
import verdicts  # noqa: E402

# The per-case deadline: a hang fails the case. Longer than run.py's default so that a slow
# (sanitizer) build on a busy machine is not taken for a hang.
TIMEOUT = 5.0

# Cases Spillway failed at this branch's base (main 3c1177e), each with the fix that makes it pass
# (issue #12). Remove an entry when its fix lands: the test then guards that case. A listed case
# that passes is printed (not failed), so that this test passes both before and after a fix merges.
KNOWN_FAILURES = {
    # Request line and target
    "rl-version-2-0": "HTTP/2.0 in an HTTP/1 request line is forwarded",
    "rl-target-fragment": "a fragment in the target is forwarded",
    "rl-asterisk-get": "asterisk-form on a non-OPTIONS method is forwarded",
    "rl-asterisk-post": "asterisk-form on a non-OPTIONS method is forwarded",
    "rl-asterisk-options-suffix": "`OPTIONS *x` is forwarded",
    "rl-leading-lf": "a bare LF before the request line is skipped (SPEC: 400)",
    "rl-double-space": "a request line with two spaces is normalized and forwarded (SPEC: 400)",
    "hdr-requestline-bare-lf": "a bare LF ending the request line is accepted (SPEC: 400)",
    "abs-other-host": "absolute-form: the authority does not replace Host",
    "abs-with-port": "absolute-form: the authority does not replace Host",
    "abs-userinfo": "absolute-form with userinfo is forwarded",
    "abs-empty-host": "absolute-form without a host is forwarded",
    "abs-fragment": "a fragment in an absolute-form target is forwarded",
    "abs-query-no-path": "absolute-form without a path is forwarded as is, not as /?x=1",
    "abs-same-host": "absolute-form is forwarded as is, not in origin form",
    "abs-no-path": "absolute-form is forwarded as is, not in origin form",
    "abs-uppercase-scheme": "absolute-form is forwarded as is, not in origin form",
    "abs-https-scheme": "absolute-form is forwarded as is, not in origin form",
    # Host and header syntax
    "host-list": "a Host list is forwarded",
    "host-userinfo": "an invalid Host is forwarded",
    "host-path": "an invalid Host is forwarded",
    "host-space-inside": "an invalid Host is forwarded",
    "host-invalid-char": "an invalid Host is forwarded",
    "host-bad-port": "an invalid Host is forwarded",
    "hdr-empty-name": "an empty header name is forwarded",
    "pipe-host-list-then-good": "a Host list is forwarded",
    # Framing
    "te-empty": "an empty Transfer-Encoding is forwarded",
    "te-trailing-ows": "trailing OWS after `chunked` is rejected",
    "te-http10": "HTTP/1.0 with Transfer-Encoding is forwarded",
    "te-identity-chunked": "`identity, chunked` is forwarded (SPEC: 400 or 501)",
    "chunk-size-16f": "a 2^64-1 chunk size is forwarded",
    "chunk-end-bare-lf": "a bare LF ending the chunked body is forwarded",
    "chunk-ext-quoted-escape": "valid chunk extensions are rejected",
    "chunk-ext-multiple": "valid chunk extensions are rejected",
    "chunk-ext-bws": "valid chunk extensions are rejected",
    "chunk-ext-empty-value": "an invalid chunk extension is forwarded",
    # Trailers
    "trailer-content-length": "framing fields in trailers are forwarded",
    "trailer-host": "framing fields in trailers are forwarded",
    "trailer-obs-fold": "obs-fold in trailers is forwarded",
    "trailer-empty-name": "an empty trailer name is forwarded",
    "trailer-huge": "trailers are unbounded",
    "trailer-many": "trailers are unbounded",
    "trailer-uaf-8k-then-300k": "trailers are unbounded (and the use-after-free)",
    # Upgrade, routing, responses
    "upgrade-h2c": "an h2c upgrade is tunnelled when the backend accepts it",
    "route-apix": "path_prefix /api matches /apix",
    "route-dotdot": "path_prefix /api matches /api/../admin",
    "resp-204-with-body-then-next": "a 204's stray body is read as the next response",
    "resp-huge-head": "response heads have no size limit",
}


def spillway_missing():
    return proxies.available("spillway")


def others_missing():
    missing = [n for n in ("haproxy", "nginx") if proxies.available(n)]
    return ", ".join(missing) + " not installed" if missing else None


def describe(results):
    return "\n".join("  %-40s %-9s %s" % (r.case.id, r.category, r.reason[:240]) for r in results)


@unittest.skipIf(spillway_missing(), spillway_missing() or "")
class ConformanceTest(unittest.TestCase):
    def test_spillway_passes_the_corpus(self):
        outcome = run.run(["spillway"], cases.CASES, timeout=TIMEOUT)
        results, note = outcome["spillway"]
        self.assertEqual(len(results), len(cases.CASES), note)
        self.assertFalse(note, note)
        ambiguous = [r for r in results if r.category == verdicts.AMBIGUOUS]
        # A SPEC verdict is required of Spillway: an RFC-only pass (e.g. normalizing a bare LF
        # instead of rejecting it) counts as a failure here.
        failed = [r for r in results if r.category in (verdicts.FAIL, verdicts.PASS_RFC) and r.case.id not in KNOWN_FAILURES]
        fixed = [r for r in results if r.category == verdicts.PASS and r.case.id in KNOWN_FAILURES]
        self.assertEqual(
            [r.case.id for r in ambiguous if r.case.id not in KNOWN_FAILURES],
            [],
            "ambiguous bytes forwarded:\n" + describe(ambiguous),
        )
        self.assertEqual(failed, [], "failed:\n" + describe(failed))
        if fixed:
            print(
                "\nKNOWN_FAILURES that pass now (remove them): " + " ".join(r.case.id for r in fixed),
                file=sys.stderr,
            )

    @unittest.skipIf(others_missing(), others_missing() or "")
    def test_spillway_scores_at_least_haproxy_and_nginx(self):
        outcome = run.run(["spillway", "haproxy", "nginx"], cases.CASES, timeout=TIMEOUT)
        scores = {}
        for name, (results, note) in outcome.items():
            self.assertEqual(len(results), len(cases.CASES), note)
            scores[name] = run.summarize(results)
        summary = run.summary_line(["spillway", "haproxy", "nginx"], cases.CASES, outcome)
        self.assertGreaterEqual(scores["spillway"][0], scores["haproxy"][0], summary)
        self.assertGreaterEqual(scores["spillway"][0], scores["nginx"][0], summary)


if __name__ == "__main__":
    unittest.main()
