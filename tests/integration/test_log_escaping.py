"""Access-log lines stay one line each and parse, whatever bytes a client puts in its request: JSON
lines go through json.loads (bytes that are not UTF-8 arrive as U+FFFD), template fields escape
everything outside printable ASCII as \\xHH."""

import json
import os
import socket
import unittest

from harness import Spillway, wait_until
from testd import Testd

CONFIG = """
workers: 1
admin: { listen: 127.0.0.1:{admin_port} }
access_log: { path: access.log, format: %s }
listeners: [ { listen: 127.0.0.1:{port}, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, health_check: false, backends: [ { address: %s } ] } ]
"""

# Requests a client can send (llhttp accepts obs-text, i.e. bytes 0x80-0xff, in header values, and
# HTAB; what it refuses is logged too, with what was parsed of it).
HOSTILE = [
    b"GET /ok HTTP/1.1\r\nHost: evil\x80\xff\xc3\x28\"\\ x\r\nX-Request-Id: a\tb\"c\xed\xa0\x80\r\n"
    b"Connection: close\r\n\r\n",
    b"GET /caf\xc3\xa9\x80\xfe HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: a\r\nX-Request-Id: }\"{\\\"status\\\":1\r\nConnection: close\r\n\r\n",
    b"GET /x\x01\x7f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
]


def send(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        while s.recv(65536):
            pass


class AccessLogEscapingTest(unittest.TestCase):
    def setUp(self):
        self.backend = Testd(name="a")

    def tearDown(self):
        self.backend.stop()

    def run_hostile(self, fmt):
        sw = Spillway(CONFIG % (fmt, self.backend.address))
        try:
            for data in HOSTILE:
                send(sw.port, data)
            path = os.path.join(sw.dir, "access.log")

            def lines():
                if not os.path.exists(path):
                    return []
                with open(path, "rb") as f:
                    return f.read().split(b"\n")[:-1]

            self.assertTrue(wait_until(lambda: len(lines()) >= len(HOSTILE), 5), lines())
            return lines()
        finally:
            sw.stop()

    def test_json_lines_parse_and_are_valid_utf8(self):
        lines = self.run_hostile("json")
        self.assertEqual(len(lines), len(HOSTILE))
        records = []
        for raw in lines:
            text = raw.decode("utf-8")  # strict: raises on any invalid byte
            records.append(json.loads(text))
        self.assertEqual(records[0]["host"], "evil\ufffd\ufffd\ufffd(\"\\ x")
        self.assertEqual(records[0]["request_id"], "a\tb\"c\ufffd\ufffd\ufffd")
        self.assertEqual(records[2]["request_id"], "}\"{\\\"status\\\":1")
        self.assertIsInstance(records[2]["status"], int)

    def test_template_fields_are_escaped(self):
        lines = self.run_hostile('"{host} {request_id} {path} {status}"')
        self.assertEqual(len(lines), len(HOSTILE))
        for raw in lines:
            self.assertTrue(all(0x20 <= b < 0x7f for b in raw), raw)
            self.assertEqual(len(raw.split(b" ")), 4, raw)  # no field can add a column
        self.assertTrue(lines[0].startswith(b"evil\\x80\\xFF\\xC3(\\x22\\x5C\\x20x a\\x09b\\x22c\\xED\\xA0\\x80 /ok "),
                        lines[0])


if __name__ == "__main__":
    unittest.main()
