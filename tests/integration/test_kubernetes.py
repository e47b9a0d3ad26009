"""deploy/kubernetes/ against the product: the manifests agree with each other, with the Dockerfile
and with the config they ship, and that config, run by the real binary, answers the probes the
manifests name and shuts down the way the pod spec assumes (SIGTERM: /ready 503 at once, the
listener serving for drain_delay, then closed, requests in flight finished, exit 0 well within
terminationGracePeriodSeconds). The ConfigMap's mounted layout is updated the way kubelet does it
(a `..data` symlink swap) and the config watcher applies it.

Needs python3-yaml (scripts/install-deps.sh). No cluster is involved.
"""

import glob
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import yaml

from harness import REPO, SPILLWAY_BIN, UNDER_TSAN, Spillway, free_port, wait_until
from testd import Testd

DEPLOY = os.path.join(REPO, "deploy", "kubernetes")
ADMIN_PATHS = ("/ready", "/live", "/status", "/metrics", "/", "/degradation")  # GET routes (README)
COMPILERS = {"g++", "gcc", "clang", "cpp", "cmake", "build-essential", "ninja-build", "make"}


def parse_duration(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(text).strip())
    assert m, "not a duration: %r" % text
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def load_manifests():
    """{kind: [object, ...]} over every YAML document in deploy/kubernetes, and the kustomization."""
    objects, kustomization = {}, None
    for path in sorted(glob.glob(os.path.join(DEPLOY, "*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is None:
                    continue
                if doc.get("kind") == "Kustomization":
                    kustomization = (path, doc)
                    continue
                assert doc.get("apiVersion") and doc.get("kind"), path
                doc["_file"] = os.path.basename(path)
                objects.setdefault(doc["kind"], []).append(doc)
    return objects, kustomization


def one(objects, kind, name=None):
    found = [o for o in objects.get(kind, []) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, "expected one %s %s, found %d" % (kind, name or "", len(found))
    return found[0]


class Fleet:
    """The Deployment, its container, the ConfigMap's config and the objects that point at them."""

    def __init__(self):
        self.objects, self.kustomization = load_manifests()
        self.deployment = one(self.objects, "Deployment", "spillway")
        self.pod = self.deployment["spec"]["template"]["spec"]
        assert len(self.pod["containers"]) == 1, "one container expected"
        self.container = self.pod["containers"][0]
        self.ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        # The config: the -c argument, through the volume mounted there, to the ConfigMap's key.
        args = self.container["args"]
        self.config_path = args[args.index("-c") + 1]
        self.config_mount, self.config_volume, self.config_key = self.volume_for(self.config_path)
        self.configmap = one(self.objects, "ConfigMap", self.config_volume["configMap"]["name"])
        self.config_text = self.configmap["data"][self.config_key]
        self.config = yaml.safe_load(self.config_text)

    def volume_for(self, path):
        """(mount, volume, key) of the volume that holds `path` in the container."""
        for m in self.container["volumeMounts"]:
            prefix = m["mountPath"].rstrip("/") + "/"
            if path.startswith(prefix):
                vol = next(v for v in self.pod["volumes"] if v["name"] == m["name"])
                return m, vol, path[len(prefix):]
        raise AssertionError("no volume mounted at %s" % path)

    def probe(self, kind):
        """(path, container port) of a probe's httpGet."""
        get = self.container[kind]["httpGet"]
        port = get["port"]
        return get["path"], self.ports[port] if isinstance(port, str) else port


class ManifestTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.f = Fleet()

    def test_kinds_and_kustomization(self):
        kinds = {k: sorted(o["metadata"]["name"] for o in v) for k, v in self.f.objects.items()}
        self.assertEqual(kinds, {"ConfigMap": ["spillway-config"], "Deployment": ["spillway"],
                                 "PodDisruptionBudget": ["spillway"], "Service": ["app-backends", "spillway"]})
        path, k = self.f.kustomization
        listed = sorted(k["resources"])
        present = sorted(os.path.basename(p) for p in glob.glob(os.path.join(DEPLOY, "*.yaml")) if p != path)
        self.assertEqual(listed, present, "kustomization.yaml lists every manifest")

    def test_selectors_match_the_pods(self):
        d = self.f.deployment
        selector = d["spec"]["selector"]["matchLabels"]
        pod_labels = d["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(selector)
        self.assertLessEqual(selector.items(), pod_labels.items(), "the Deployment selects its own pods")
        service = one(self.f.objects, "Service", "spillway")
        self.assertEqual(service["spec"]["selector"], selector)
        pdb = one(self.f.objects, "PodDisruptionBudget", "spillway")
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"], selector)
        self.assertLess(pdb["spec"].get("maxUnavailable", 0), d["spec"]["replicas"])
        for c in self.f.pod.get("topologySpreadConstraints", []):
            self.assertEqual(c["labelSelector"]["matchLabels"], selector)
        # A rollout never has fewer ready pods than asked for.
        self.assertEqual(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0)

    def test_ports_match_the_config(self):
        cfg = self.f.config
        listener_ports = sorted(port_of(l["listen"]) for l in cfg["listeners"])
        self.assertEqual(listener_ports, [self.f.ports["http"]])
        self.assertEqual(port_of(cfg["admin"]["listen"]), self.f.ports["admin"])
        # Probes need the admin API on the pod's address, not loopback; the config then needs a token.
        self.assertFalse(cfg["admin"]["listen"].startswith("127."))
        self.assertIn("token_file", cfg["admin"])
        for l in cfg["listeners"]:
            self.assertFalse(l["listen"].startswith("127."), "kube-proxy reaches the pod's address")
        service = one(self.f.objects, "Service", "spillway")
        for p in service["spec"]["ports"]:
            target = p["targetPort"]
            self.assertIn(self.f.ports[target] if isinstance(target, str) else target, listener_ports)
        self.assertNotIn(self.f.ports["admin"], [p.get("targetPort") for p in service["spec"]["ports"]])
        self.assertNotIn("admin", [p.get("targetPort") for p in service["spec"]["ports"]])

    def test_probes_name_paths_the_admin_api_serves(self):
        ready, port = self.f.probe("readinessProbe")
        self.assertEqual((ready, port), ("/ready", self.f.ports["admin"]))
        live, port = self.f.probe("livenessProbe")
        self.assertEqual((live, port), ("/live", self.f.ports["admin"]))
        self.assertNotEqual(live, "/ready", "liveness must not fail during a drain")
        if "startupProbe" in self.f.container:
            self.assertEqual(self.f.probe("startupProbe"), ("/live", self.f.ports["admin"]))
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            if kind in self.f.container:
                self.assertIn(self.f.probe(kind)[0], ADMIN_PATHS)

    def test_config_and_token_volumes(self):
        mount, volume, key = self.f.config_mount, self.f.config_volume, self.f.config_key
        self.assertEqual(self.f.config_path, mount["mountPath"].rstrip("/") + "/" + key)
        self.assertIn(key, self.f.configmap["data"])
        # A subPath mount is never updated by kubelet: hot reload needs the directory mount.
        self.assertNotIn("subPath", mount)
        self.assertTrue(mount.get("readOnly"))
        # The token file is the Secret's key at its mount.
        token = self.f.config["admin"]["token_file"]
        tmount, tvolume, tkey = self.f.volume_for(token)
        self.assertIn("secret", tvolume)
        items = {i["path"]: i["key"] for i in tvolume["secret"].get("items", [])}
        self.assertIn(tkey, items if items else {tkey: tkey})
        self.assertNotIn("subPath", tmount)

    def test_image_matches_the_build(self):
        image = self.f.container["image"]
        name = image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]
        with open(os.path.join(REPO, "scripts", "container-check.sh")) as f:
            built = re.search(r"image=\$\{SPILLWAY_IMAGE:-([\w.-]+)\}", f.read()).group(1)
        self.assertEqual(name, built)
        with open(os.path.join(REPO, "Dockerfile")) as f:
            self.assertIn("-t %s ." % built, f.read())

    def test_security_context_and_the_dockerfile_user(self):
        pod_sc, sc = self.f.pod.get("securityContext", {}), self.f.container["securityContext"]
        self.assertTrue(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")))
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        with open(os.path.join(REPO, "Dockerfile")) as f:
            dockerfile = f.read()
        self.assertEqual(uid, 10001)
        self.assertIn("--uid %d" % uid, dockerfile)
        self.assertRegex(dockerfile, r"\nUSER %d(:\d+)?\n" % uid)

    def test_dockerfile_runtime_stage_has_no_compiler_and_every_library(self):
        with open(os.path.join(REPO, "Dockerfile")) as f:
            final = re.split(r"^FROM ", f.read(), flags=re.M)[-1]
        packages = set()
        for m in re.finditer(r"apt-get install ((?:[^&\\\n]|\\\n)*)", final):
            packages |= {w for w in m.group(1).replace("\\\n", " ").split() if not w.startswith("-")}
        self.assertFalse(packages & COMPILERS, "compiler packages in the runtime stage")
        self.assertIn("COPY --from=build /src/build/spillway", final)
        # Each shared library the binary loads comes from a package the runtime stage installs
        # (or one every Debian base has).
        if shutil.which("dpkg") is None or not os.path.exists(SPILLWAY_BIN):
            self.skipTest("needs dpkg and the binary")
        base = {"libc6", "libgcc-s1", "libstdc++6"}
        out = subprocess.run(["ldd", SPILLWAY_BIN], capture_output=True, text=True, check=True).stdout
        for lib in re.findall(r"=> (/\S+)", out):
            if re.match(r"lib(a|ub|t|l)san", os.path.basename(lib)):
                continue  # a sanitizer build's runtime (the image is built without one)
            owner = None
            for path in (os.path.realpath(lib), lib, lib.replace("/lib/", "/usr/lib/", 1)):
                r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
                if r.returncode == 0:
                    owner = r.stdout.split(":")[0]
                    break
            self.assertIsNotNone(owner, lib)
            self.assertIn(owner, packages | base, "%s (%s) is not installed in the runtime image" % (lib, owner))

    def test_grace_period_covers_drain_delay_and_drain_timeout(self):
        cfg = self.f.config
        delay, timeout = parse_duration(cfg.get("drain_delay", "0s")), parse_duration(cfg.get("drain_timeout", "10s"))
        self.assertGreater(delay, 0, "the fleet's config delays the drain")
        pre_stop = 0
        hook = self.f.container.get("lifecycle", {}).get("preStop", {})
        if "sleep" in hook:
            pre_stop = hook["sleep"]["seconds"]
        self.assertGreaterEqual(self.f.pod["terminationGracePeriodSeconds"], pre_stop + delay + timeout + 1)
        # In-flight requests may take `request` to finish: the drain gives them that long.
        for u in cfg["upstreams"]:
            request = parse_duration(u.get("timeouts", {}).get("request", "15s"))
            self.assertGreaterEqual(timeout, request)

    def test_resources_and_workers(self):
        res = self.f.container["resources"]
        for part in ("requests", "limits"):
            self.assertIn("cpu", res[part])
            self.assertIn("memory", res[part])
        # A worker is one thread: workers equal to the CPU limit (`auto` would count the node's CPUs).
        self.assertEqual(self.f.config["workers"], int(res["limits"]["cpu"]))

    def test_headless_service_is_the_configs_backend(self):
        headless = one(self.f.objects, "Service", "app-backends")
        self.assertEqual(headless["spec"]["clusterIP"], "None")
        backends = [b["address"] for u in self.f.config["upstreams"] for b in u["backends"]]
        host, port = backends[0].rsplit(":", 1)
        self.assertEqual(host.split(".")[0], headless["metadata"]["name"])
        self.assertEqual(int(port), headless["spec"]["ports"][0]["port"])


def local_config(fleet, port, admin_port, backend, token_path):
    """The ConfigMap's config with loopback listen addresses on free ports, the backends replaced by
    `backend` and the token file by `token_path`; everything else as shipped."""
    cfg = yaml.safe_load(fleet.config_text)
    for l in cfg["listeners"]:
        l["listen"] = "127.0.0.1:%d" % port
    cfg["admin"]["listen"] = "127.0.0.1:%d" % admin_port
    cfg["admin"]["token_file"] = token_path
    for u in cfg["upstreams"]:
        u["backends"] = [{"address": backend}]
    return yaml.safe_dump(cfg, sort_keys=False)


def kubelet_get(port, path, timeout=2):
    """An httpGet probe as kubelet sends it: Host is the pod's address, no Authorization."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers={"User-Agent": "kube-probe/1.30", "Accept": "*/*"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


class ShippedConfigTest(unittest.TestCase):
    """The ConfigMap's config, run by the real binary."""

    def setUp(self):
        self.f = Fleet()
        self.backend = Testd(name="a")
        self.dir = tempfile.mkdtemp(prefix="spillway-k8s-")
        self.token = os.path.join(self.dir, "token")
        with open(self.token, "w") as fh:
            fh.write("k8s-test-token\n")

    def tearDown(self):
        self.backend.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_probes_then_sigterm_drains_as_the_pod_spec_assumes(self):
        port, admin_port = free_port(), free_port()
        lb = Spillway(local_config(self.f, port, admin_port, self.backend.address, self.token), port=port,
                      admin_port=admin_port)
        try:
            ready_path, _ = self.f.probe("readinessProbe")
            live_path, _ = self.f.probe("livenessProbe")
            self.assertTrue(wait_until(lambda: kubelet_get(admin_port, ready_path)[0] == 200, 10))
            self.assertEqual(kubelet_get(admin_port, live_path), (200, b"alive\n"))
            if "startupProbe" in self.f.container:
                self.assertEqual(kubelet_get(admin_port, self.f.probe("startupProbe")[0])[0], 200)
            # The token is in force for everything else.
            self.assertEqual(kubelet_get(admin_port, "/status")[0], 401)
            self.assertEqual(lb.request("GET", "/")[0], 200)

            delay = parse_duration(self.f.config["drain_delay"])
            slow = {}

            def slow_request():  # in flight across the whole delay and past the listener's close
                slow["result"] = lb.request("GET", "/?latency=%dms" % int((delay + 2) * 1000), timeout=30)
                slow["done"] = time.monotonic()
            t = threading.Thread(target=slow_request)
            t.start()
            time.sleep(0.3)
            sigterm = time.monotonic()
            lb.signal(signal.SIGTERM)
            # /ready is 503 at once (well before the listener closes); /live stays 200.
            self.assertTrue(wait_until(lambda: kubelet_get(admin_port, ready_path)[0] == 503, 2 if UNDER_TSAN else 0.5))
            self.assertEqual(kubelet_get(admin_port, live_path)[0], 200)
            # During drain_delay new connections are accepted and served.
            served = 0
            while time.monotonic() - sigterm < delay - 1:
                status, headers, _ = lb.request("GET", "/")
                self.assertEqual(status, 200)
                self.assertNotEqual(headers.get("connection"), "close")
                served += 1
                time.sleep(0.5)
            self.assertGreaterEqual(served, 3)
            # Then the listener closes: new connections are refused.
            self.assertTrue(wait_until(lambda: refused(port), delay + 2, step=0.05))
            closed = time.monotonic()
            self.assertGreater(closed - sigterm, delay - 0.5)
            self.assertLess(closed - sigterm, delay + (4 if UNDER_TSAN else 1.5))
            self.assertEqual(kubelet_get(admin_port, ready_path)[0], 503)
            self.assertEqual(kubelet_get(admin_port, live_path)[0], 200)
            # The request in flight completes after that, and the process exits 0.
            t.join(30)
            self.assertEqual(slow["result"][0], 200)
            self.assertGreater(slow["done"], closed)
            self.assertEqual(lb.proc.wait(parse_duration(self.f.config["drain_timeout"])), 0)
            exited = time.monotonic() - sigterm
            self.assertLess(exited, self.f.pod["terminationGracePeriodSeconds"])
            logs = lb.logs()
            self.assertIn("drain_delay", logs)
            self.assertIn("drained; exiting", logs)
            print("\nK8S: /ready 503 at once; %d requests on new connections during drain_delay; listener "
                  "closed after %.1f s; in-flight request done after %.1f s; exit 0 after %.1f s"
                  % (served, closed - sigterm, slow["done"] - sigterm, exited))
        finally:
            lb.stop()

    def test_a_configmap_update_as_kubelet_writes_it_is_applied(self):
        # kubelet's atomic writer: files in a timestamped directory, `..data` a symlink to it, each
        # key a symlink through `..data`; an update writes a new directory, points `..data_tmp` at
        # it, renames `..data_tmp` over `..data` (atomic), then removes the old directory.
        other = Testd(name="b")
        mount = os.path.join(self.dir, "etc-spillway")
        os.makedirs(mount)
        port, admin_port = free_port(), free_port()
        stamp = [0]

        def publish(text):
            stamp[0] += 1
            name = "..2026_12_01_23_59_%02d.%09d" % (stamp[0], 123456789 + stamp[0])
            os.makedirs(os.path.join(mount, name))
            with open(os.path.join(mount, name, self.f.config_key), "w") as fh:
                fh.write(text)
            old = os.readlink(os.path.join(mount, "..data")) if os.path.islink(os.path.join(mount, "..data")) else None
            os.symlink(name, os.path.join(mount, "..data_tmp"))
            os.rename(os.path.join(mount, "..data_tmp"), os.path.join(mount, "..data"))
            if old is None:
                os.symlink(os.path.join("..data", self.f.config_key), os.path.join(mount, self.f.config_key))
            else:
                shutil.rmtree(os.path.join(mount, old))
        publish(local_config(self.f, port, admin_port, self.backend.address, self.token))
        lb = Spillway(None, port=port, admin_port=admin_port, config_path=os.path.join(mount, self.f.config_key))
        try:
            self.assertTrue(wait_until(lambda: kubelet_get(admin_port, "/ready")[0] == 200, 10))
            self.assertEqual(lb.request("GET", "/")[1]["x-backend"], "a")
            publish(local_config(self.f, port, admin_port, other.address, self.token))
            took = wait_until(lambda: lb.request("GET", "/")[1]["x-backend"] == "b", 10)
            self.assertTrue(took, lb.logs())
            auth = {"Authorization": "Bearer k8s-test-token"}
            c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
            c.request("GET", "/metrics", headers=auth)
            metrics = c.getresponse().read().decode()
            c.close()
            # Seen by the inotify watch (trigger "file"), not only by the 2 s identity poll.
            self.assertRegex(metrics, r'spillway_config_reload_triggers_total\{trigger="file"\} 1\b')
            self.assertRegex(metrics, r"spillway_config_generation 2\b")
            print("\nK8S: a kubelet-style ..data swap was applied in %.2f s (inotify)" % took)
        finally:
            lb.stop()
            other.stop()


class ValidateTest(unittest.TestCase):
    def test_the_shipped_config_validates_but_for_the_cluster_only_parts(self):
        # Outside a pod the token file and the Service's name are missing; with those two replaced,
        # `spillway validate` accepts the ConfigMap's config as it is otherwise.
        f = Fleet()
        d = tempfile.mkdtemp(prefix="spillway-k8s-")
        try:
            token = os.path.join(d, "token")
            with open(token, "w") as fh:
                fh.write("t\n")
            text = f.config_text.replace(f.config["admin"]["token_file"], token)
            for u in f.config["upstreams"]:
                for b in u["backends"]:
                    text = text.replace(b["address"], "127.0.0.1:%d" % port_of(b["address"]))
            path = os.path.join(d, "spillway.yaml")
            with open(path, "w") as fh:
                fh.write(text)
            r = subprocess.run([SPILLWAY_BIN, "validate", "-c", path], capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
