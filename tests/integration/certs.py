"""A throwaway certificate authority for TLS tests, made with the `openssl` command.

    ca = CertAuthority(tmpdir)                 # ca.crt / ca.key
    crt, key = ca.issue("a", ["a.test", "*.a.test"])
    crt, key = ca.issue("ip", [], ips=["127.0.0.1"])

Keys are EC P-256 (fast to make and to handshake with). Every file lands in the given directory.
"""

import os
import subprocess


def _run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class CertAuthority:
    def __init__(self, directory, name="Spillway Test CA"):
        self.dir = directory
        self.crt = os.path.join(directory, "ca.crt")
        self.key = os.path.join(directory, "ca.key")
        _run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", self.key, "-out", self.crt, "-days", "2", "-subj", "/CN=" + name,
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def issue(self, stem, dns_names, ips=(), days=2, cn=None):
        """Issues a server certificate; returns (cert path, key path)."""
        crt = os.path.join(self.dir, stem + ".crt")
        key = os.path.join(self.dir, stem + ".key")
        csr = os.path.join(self.dir, stem + ".csr")
        ext = os.path.join(self.dir, stem + ".ext")
        sans = ["DNS:" + n for n in dns_names] + ["IP:" + ip for ip in ips]
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
            if sans:
                f.write("subjectAltName=" + ",".join(sans) + "\n")
        subject = "/CN=" + (cn or (dns_names[0] if dns_names else stem))
        _run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
             "-out", csr, "-subj", subject)
        _run("openssl", "x509", "-req", "-in", csr, "-CA", self.crt, "-CAkey", self.key, "-CAcreateserial",
             "-out", crt, "-days", str(days), "-extfile", ext)
        return crt, key
