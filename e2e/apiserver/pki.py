"""Throw-away certificates made with the openssl CLI, and kubeconfig files for clients."""

import base64
import os
import random
import subprocess

import yaml


def _openssl(*args, cwd):
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.strip()}")


def make_ca(directory, name, cn):
    """directory/name.crt + name.key: a self-signed EC CA."""
    _openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "3",
             "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    return os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")


def make_cert(directory, name, ca, subject, server=False, sans=()):
    """directory/name.crt + name.key signed by ca=(crt, key)."""
    ext = os.path.join(directory, f"{name}.ext")
    lines = ["basicConstraints=critical,CA:FALSE",
             "keyUsage=critical,digitalSignature,keyEncipherment",
             f"extendedKeyUsage={'serverAuth' if server else 'clientAuth'}"]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    with open(ext, "w") as f:
        f.write("\n".join(lines) + "\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=directory)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", ca[0], "-CAkey", ca[1],
             "-set_serial", str(random.getrandbits(63)), "-out", f"{name}.crt", "-days", "3",
             "-extfile", ext, cwd=directory)
    os.unlink(os.path.join(directory, f"{name}.csr"))
    os.unlink(ext)
    return os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")


def make_server_pki(directory, client_certs=True):
    """The CA, server cert and (optionally) a client CA + admin client cert. Returns paths."""
    os.makedirs(directory, exist_ok=True)
    paths = {}
    paths["ca"], paths["ca_key"] = make_ca(directory, "ca", "sluice-test-ca")
    paths["server_cert"], paths["server_key"] = make_cert(
        directory, "server", (paths["ca"], paths["ca_key"]), "/CN=kube-apiserver", server=True,
        sans=("IP:127.0.0.1", "IP:0:0:0:0:0:0:0:1", "DNS:localhost", "DNS:kubernetes",
              "DNS:kubernetes.default", "DNS:kubernetes.default.svc"))
    if client_certs:
        paths["client_ca"], paths["client_ca_key"] = make_ca(directory, "client-ca",
                                                             "sluice-test-client-ca")
        paths["client_cert"], paths["client_key"] = make_cert(
            directory, "client", (paths["client_ca"], paths["client_ca_key"]),
            "/O=system:masters/CN=sluice-admin")
    return paths


def _b64(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def write_kubeconfig(path, server, ca=None, token=None, client_cert=None, client_key=None,
                     namespace="default"):
    cluster = {"server": server}
    if ca:
        cluster["certificate-authority-data"] = _b64(ca)
    user = {}
    if token:
        user["token"] = token
    if client_cert:
        user["client-certificate-data"] = _b64(client_cert)
        user["client-key-data"] = _b64(client_key)
    doc = {"apiVersion": "v1", "kind": "Config", "preferences": {},
           "clusters": [{"name": "sluice-test", "cluster": cluster}],
           "users": [{"name": "sluice-test-user", "user": user}],
           "contexts": [{"name": "sluice-test", "context": {
               "cluster": "sluice-test", "user": "sluice-test-user", "namespace": namespace}}],
           "current-context": "sluice-test"}
    with open(path, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    os.chmod(path, 0o600)
    return path
