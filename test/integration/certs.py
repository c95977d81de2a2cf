"""Throwaway TLS material made with the openssl CLI: CAs, a 127.0.0.1/localhost server cert, client certs."""

import os
import subprocess
from pathlib import Path


def _openssl(*args, cwd):
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")


class Pki:
    """Files in `dir`: NAME.crt / NAME.key per issued certificate, CA files as CA_NAME.crt / .key.

    Keys are EC P-256 (fast to make) and mode 0600, which libpq and PostgreSQL insist on."""

    def __init__(self, dir):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, name, ext):
        return self.dir / f"{name}.{ext}"

    def _key_and_csr(self, name, cn):
        key, csr = self.path(name, "key"), self.path(name, "csr")
        _openssl("req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn}", cwd=self.dir)
        os.chmod(key, 0o600)
        return key, csr

    def make_ca(self, name="ca", cn="splitpool test CA"):
        """Self-signed CA; returns the certificate path."""
        key = self.path(name, "key")
        _openssl("req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-keyout", str(key), "-out", str(self.path(name, "crt")),
                 "-days", "2", "-subj", f"/CN={cn}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)
        os.chmod(key, 0o600)
        return self.path(name, "crt")

    def _sign(self, name, csr, ca, extensions):
        ext = self.path(name, "ext")
        ext.write_text("\n".join(extensions) + "\n")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.path(ca, "crt")),
                 "-CAkey", str(self.path(ca, "key")), "-CAcreateserial", "-out", str(self.path(name, "crt")),
                 "-days", "2", "-sha256", "-extfile", str(ext), cwd=self.dir)
        return self.path(name, "crt"), self.path(name, "key")

    def make_server(self, name="server", ca="ca", cn="localhost"):
        """Server certificate valid for 127.0.0.1 and localhost (so sslmode=verify-full works on loopback)."""
        _, csr = self._key_and_csr(name, cn)
        return self._sign(name, csr, ca, ["basicConstraints=CA:FALSE",
                                          "keyUsage=critical,digitalSignature,keyEncipherment",
                                          "extendedKeyUsage=serverAuth",
                                          "subjectAltName=IP:127.0.0.1,DNS:localhost"])

    def make_client(self, cn, name=None, ca="ca"):
        """Client certificate whose CN is a user name (for `cert` authentication)."""
        name = name or f"client-{cn}"
        _, csr = self._key_and_csr(name, cn)
        return self._sign(name, csr, ca, ["basicConstraints=CA:FALSE",
                                          "keyUsage=critical,digitalSignature,keyEncipherment",
                                          "extendedKeyUsage=clientAuth"])


def standard_pki(dir):
    """The set every auth test uses: CA `ca` with server `server` and clients for digoal and mallory,
    plus an unrelated CA `other_ca` (for verification that must fail)."""
    pki = Pki(dir)
    pki.make_ca("ca")
    pki.make_ca("other_ca", cn="some other CA")
    pki.make_server("server")
    pki.make_client("digoal", name="client-digoal")
    pki.make_client("mallory", name="client-mallory")
    return pki
