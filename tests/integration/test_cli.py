"""The command line: validate, version, help, and a config that cannot start."""

import os
import subprocess
import tempfile
import unittest

from harness import SPILLWAY_BIN


def run(*args, timeout=10):
    return subprocess.run([SPILLWAY_BIN, *args], capture_output=True, text=True, timeout=timeout)


def write(text):
    d = tempfile.mkdtemp(prefix="spillway-cli-")
    path = os.path.join(d, "c.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


MINIMAL = """listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 }, { address: 127.0.0.1:9002 } ] } ]
"""


class CliTest(unittest.TestCase):
    def test_validate_minimal(self):
        out = run("validate", "-c", write(MINIMAL))
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertEqual(len(out.stdout.strip().splitlines()), 1)

    def test_validate_shipped_example(self):
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        out = run("validate", "-c", os.path.join(repo, "config", "spillway.yaml"))
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_validate_errors_name_file_line_col(self):
        path = write("""listeners:
  - listen: 0.0.0.0:8080
    routes:
      - upstream: ap
upstreams:
  - name: app
    balanse: round_robin
    timeouts: { connect: 5 s }
    backends:
      - address: 127.0.0.1
""")
        out = run("validate", "-c", path)
        self.assertEqual(out.returncode, 1)
        lines = out.stdout.strip().splitlines()
        self.assertEqual(len(lines), 4, out.stdout)
        self.assertTrue(lines[0].startswith(path + ":4:19: "), lines[0])
        self.assertTrue(lines[1].startswith(path + ":7:5: "), lines[1])
        self.assertIn("balanse", lines[1])
        self.assertTrue(lines[2].startswith(path + ":8:26: "), lines[2])
        self.assertTrue(lines[3].startswith(path + ":10:18: "), lines[3])

    def test_validate_diff(self):
        old = write("""listeners:
  - { name: web, listen: 127.0.0.1:8080, routes: [ { upstream: app } ] }
  - { name: gone, listen: 127.0.0.1:8081, routes: [ { upstream: app } ] }
upstreams:
  - name: app
    backends: [ { address: 127.0.0.1:9001 }, { address: 127.0.0.1:9002 }, { address: 127.0.0.1:9003 } ]
""")
        new = write("""listeners:
  - { name: web, listen: 127.0.0.1:8080, routes: [ { match: { path_prefix: /api/ }, upstream: api }, { upstream: app } ] }
  - { name: extra, listen: 127.0.0.1:8082, routes: [ { upstream: app } ] }
upstreams:
  - name: app
    backends: [ { address: 127.0.0.1:9001, weight: 3 }, { address: 127.0.0.1:9003 }, { address: 127.0.0.1:9004 } ]
  - name: api
    health_check: { tcp: {}, interval: 1s }
    backends: [ { address: 127.0.0.1:9100 } ]
""")
        out = run("validate", "-c", new, "--diff", old)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        text = out.stdout
        for line in ('listener added: "extra" on 127.0.0.1:8082',
                     'listener changed: "web" on 127.0.0.1:8080 (routes)',
                     'listener removed: "gone" on 127.0.0.1:8081',
                     'upstream added: "api"',
                     'backend changed: "app" 127.0.0.1:9001 (weight 1 -> 3; state kept)',
                     'backend added: "app" 127.0.0.1:9004',
                     'backend removed: "app" 127.0.0.1:9002'):
            self.assertIn(line, text)
        self.assertNotIn("9003", text)  # unchanged: not mentioned
        same = run("validate", "-c", old, "--diff", old)
        self.assertIn("no changes", same.stdout)

    def test_run_with_bad_config_exits_1(self):
        path = write("listeners: [ { listen: nope } ]\n")
        out = run("run", "-c", path)
        self.assertEqual(out.returncode, 1)
        self.assertIn(path + ":1:", out.stderr)

    def test_version(self):
        out = run("version")
        self.assertEqual(out.returncode, 0)
        self.assertIn("spillway", out.stdout)
        self.assertIn("OpenSSL 3", out.stdout)
        self.assertIn("Boost 1.81", out.stdout)
        self.assertIn("llhttp 8.", out.stdout)

    def test_help(self):
        for args in (["--help"], ["run", "--help"], ["validate", "--help"]):
            out = run(*args)
            self.assertEqual(out.returncode, 0)
            self.assertIn("usage", out.stdout)
        self.assertEqual(run("frobnicate").returncode, 2)


if __name__ == "__main__":
    unittest.main()
