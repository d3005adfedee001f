#!/usr/bin/env python3
"""Proves that tests/deploy/validate.py catches the mistakes it is for.

Copies the source tree to a scratch directory, checks that validate.py
passes on the copy as it is, then makes one realistic mistake at a time in
a manifest, the Dockerfile or the unit (a wrong probe port, a typo in a
field or a variable, a grace period shorter than the drain, a privilege too
many, a library missing from the image, io_uring filtered out, ...) and
requires validate.py to fail with the expected message each time.

Usage: mutate.py  (environment as for validate.py)
Exit: 0 every mistake was caught, 1 otherwise, 77 when validate.py skips.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = Path(os.environ.get("ZRING_SRCDIR") or HERE.parents[1])
PYTHON = os.environ.get("ZRING_PYTHON") or sys.executable

DS = "deploy/k8s/node-agent/daemonset.yaml"
CM = "deploy/k8s/node-agent/configmap.yaml"
KZ = "deploy/k8s/node-agent/kustomization.yaml"
SA = "deploy/k8s/node-agent/serviceaccount.yaml"
PATCH = "deploy/k8s/node-agent-host-pid/host-pid.yaml"
SIDECAR = "deploy/k8s/sidecar/example.yaml"
DF = "deploy/docker/Dockerfile"
UNIT = "deploy/systemd/zring.service"
DEFAULT = "deploy/systemd/zring.default"

# The node agent's ZRING_NODE, and the certificate of an identity whose
# pod runs on node-2 only.
NODE_ENV = """            - name: ZRING_NODE
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
"""
PAYMENTS_CERT = """              - secret:
                  name: zring-identity-shop-payments
                  optional: true
                  items:
                    - key: tls.crt
                      path: cluster.local/ns/shop/sa/payments/cert-chain.pem
                    - key: tls.key
                      path: cluster.local/ns/shop/sa/payments/key.pem
"""

# (what, file, text, replacement, section, expected in the output)
MUTATIONS = [
    ("probe on the wrong port", DS, "port: 15021", "port: 15022",
     "manifests", "readinessProbe is /healthz/ready:15022"),
    ("drain longer than the grace period", DS, "value: 5s", "value: 15s",
     "manifests", "must be shorter than terminationGracePeriodSeconds 10"),
    ("misspelt zring variable", DS, "name: ZRING_LOG_FORMAT", "name: ZRING_LOG_FROMAT",
     "manifests", "env ZRING_LOG_FROMAT is not a zring option"),
    ("misspelt Kubernetes field", DS, "readinessProbe:", "readinesProbe:",
     "schema", "readinesProbe\"' does not exist in type 'IContainer'"),
    ("wrong type for a Kubernetes field", DS, "terminationGracePeriodSeconds: 10",
     "terminationGracePeriodSeconds: ten", "schema", "terminationGracePeriodSeconds"),
    ("unknown enum value", DS, "imagePullPolicy: IfNotPresent", "imagePullPolicy: Sometimes",
     "schema", '"Sometimes"'),
    ("netns mount without propagation", DS, "mountPropagation: HostToContainer",
     "mountPropagation: None", "manifests", "HostToContainer propagation"),
    ("privileged container", DS, "privileged: false", "privileged: true",
     "manifests", ": privileged"),
    ("a capability too many", DS, 'add: ["NET_ADMIN", "SYS_ADMIN"]',
     'add: ["NET_ADMIN", "SYS_ADMIN", "SYS_MODULE"]', "manifests", "adds ['SYS_MODULE']"),
    ("a needed capability missing", DS, 'add: ["NET_ADMIN", "SYS_ADMIN"]', 'add: ["NET_ADMIN"]',
     "manifests", "lacks ['SYS_ADMIN']"),
    ("undefined variable in ZRING_CONFIG", DS, "/etc/zring/config/workloads.json",
     "/etc/zring/config/$(NODE_NAME).json", "manifests", "$(NODE_NAME) is not defined before it"),
    ("config read from a key the ConfigMap lacks", DS, "/etc/zring/config/workloads.json",
     "/etc/zring/config/workload.json", "manifests", "ConfigMap zring-config has no key workload.json"),
    ("config read from a per-node key, as before ZRING_NODE", DS,
     "/etc/zring/config/workloads.json", "/etc/zring/config/$(ZRING_NODE).json", "manifests",
     "its name depends on $(ZRING_NODE), known only at run time"),
    ("ConfigMap key renamed", CM, "  workloads.json: |", "  mesh.json: |",
     "manifests", "ConfigMap key mesh.json is never read"),
    ("node agent without ZRING_NODE", DS, NODE_ENV, "", "manifests", "no ZRING_NODE"),
    ("ZRING_NODE from the pod's name", DS, "fieldPath: spec.nodeName", "fieldPath: metadata.name",
     "manifests", "ZRING_NODE comes from valueFrom {\"fieldRef\": {\"fieldPath\": \"metadata.name\"}}"),
    ("ZRING_NODE hard-coded", DS, NODE_ENV, NODE_ENV.split("  valueFrom")[0] + "  value: node-1\n",
     "manifests", "ZRING_NODE comes from value 'node-1'"),
    ("served pod without a node", CM, '"node": "node-2",\n          "zringNetns"', '"zringNetns"',
     "manifests", "has a zringNetns but no node"),
    ("node name no node can have", CM, '"node": "node-2"', '"node": "Node-2"',
     "manifests", "'Node-2' is not a Kubernetes node name"),
    ("two pods of one node in one netns", CM, "cni-6b0e2f8a-3c9d-4a1e-8f7b-0c5d3e9a2b14",
     "cni-1d7a9c3b-6e2f-4b8d-a5c0-9f4e1b2d7c36", "manifests",
     "share the zringNetns /var/run/netns/cni-1d7a9c3b-6e2f-4b8d-a5c0-9f4e1b2d7c36 on node node-2"),
    ("served identity without a certificate", DS, PAYMENTS_CERT, "", "manifests",
     "identity cluster.local/ns/shop/sa/payments has no certificate in the certs volume"),
    ("config read through a subPath", DS, "mountPath: /etc/zring/config\n",
     "mountPath: /etc/zring/config\n              subPath: workloads.json\n",
     "manifests", "subPath mount"),
    ("invalid workload config", CM, '"10.244.1.17"', '"10.244.1.256"',
     "manifests", "zring check"),
    ("netns outside the mounted directories", CM, "/var/run/netns/cni-3f1b",
     "/run/other/cni-3f1b", "manifests", "under no mounted netns directory"),
    ("certificate at the wrong path", DS, "path: cluster.local/ns/shop/sa/frontend/key.pem",
     "path: cluster.local/ns/shop/sa/frontend/tls.key", "manifests", "is not <td>/ns/<ns>/sa/<sa>"),
    ("mount of an undeclared volume", DS, "- name: cni-netns\n              mountPath",
     "- name: cni-netnz\n              mountPath", "manifests", "mounts undeclared volume cni-netnz"),
    ("container port zring does not serve", DS, "containerPort: 15020", "containerPort: 15030",
     "manifests", "containerPort 15030 is not a port zring listens on"),
    ("scrape annotation on the wrong port", DS, 'prometheus.io/port: "15020"',
     'prometheus.io/port: "15090"', "manifests", "prometheus.io annotations"),
    ("image tag not zring's version", KZ, "newTag: 0.1.0", "newTag: 0.2.0",
     "manifests", "newTag 0.2.0 != zring 0.1.0"),
    ("service account token mounted", SA, "\nautomountServiceAccountToken: false",
     "\nautomountServiceAccountToken: true", "manifests", "automountServiceAccountToken must be false"),
    ("RBAC added", SA, "automountServiceAccountToken: false\n",
     "automountServiceAccountToken: false\n---\napiVersion: rbac.authorization.k8s.io/v1\n"
     "kind: ClusterRole\nmetadata:\n  name: zring\nrules: []\n",
     "manifests", "no RBAC wanted"),
    ("file left out of the kustomization", KZ, "  - configmap.yaml\n", "",
     "yaml", "configmap.yaml: in deploy/k8s/node-agent but not in its kustomization"),
    ("patch that matches nothing", PATCH, "name: zring-node-agent", "name: zring-agent",
     "yaml", "patch matches 0 objects"),
    ("key twice in one mapping", SIDECAR, "  replicas: 2\n", "  replicas: 2\n  replicas: 3\n",
     "yaml", "duplicate key 'replicas'"),
    ("init container runs a path the image lacks", SIDECAR,
     'command: ["/usr/local/bin/zring-iptables.sh", "install"]',
     'command: ["/usr/bin/zring-iptables.sh", "install"]', "manifests", "the image's copy"),
    ("sidecar that is not a native sidecar", SIDECAR, "          restartPolicy: Always\n", "",
     "manifests", "must be a native sidecar"),
    ("runtime on another Debian release", DF, "FROM debian:bookworm-slim AS runtime",
     "FROM debian:trixie-slim AS runtime", "dockerfile", "stages are"),
    ("runtime library missing from the image", DF, "liburing2 libcjson1", "liburing2",
     "dockerfile", "comes from libcjson1, which the runtime stage does not install"),
    ("COPY of a file that does not exist", DF, "COPY deploy/iptables/zring-iptables.sh",
     "COPY deploy/iptables/zring-iptable.sh", "dockerfile", "does not exist"),
    ("source left out of the build context", ".dockerignore", "tests/deploy/\n",
     "tests/deploy/\nsrc/watch.c\n", "dockerfile", "FAIL dockerfile: the build context"),
    ("image wolfSSL not checked for rustls's session tickets", DF,
     " \\\n && grep -q 'define WOLFSSL_TICKET_NONCE_MALLOC' .cache/wolfssl/include/wolfssl/options.h", "",
     "dockerfile", "takes rustls's session tickets"),
    ("unknown Dockerfile flag", DF, "COPY --from=build", "COPY --form=build",
     "dockerfile", "Unknown flag: form"),
    ("unit stops before zring has drained", UNIT, "TimeoutStopSec=15s", "TimeoutStopSec=4s",
     "systemd", "must exceed the drain timeout"),
    ("io_uring filtered out", UNIT, "SystemCallFilter=~@privileged @resources",
     "SystemCallFilter=~@privileged @resources @aio", "systemd", "io_uring_setup is filtered out"),
    ("a call zring makes filtered out", UNIT, "SystemCallFilter=~@privileged @resources",
     "SystemCallFilter=~@privileged @resources inotify_init1", "systemd",
     "inotify_init1 is filtered out"),
    ("/proc/stat hidden from the metrics", UNIT, "ProtectProc=invisible\n",
     "ProtectProc=invisible\nProcSubset=pid\n", "systemd", "ProcSubset=pid hides /proc/stat"),
    ("misspelt unit directive", UNIT, "ProtectSystem=strict", "ProtectSytem=strict",
     "systemd", "ProtectSytem"),
    ("hardening removed", UNIT, "CapabilityBoundingSet=CAP_NET_ADMIN\nNoNewPrivileges=yes\n", "",
     "systemd", "exposure above 2.5"),
    ("SSH captured on a VM", DEFAULT, "EXCLUDE_INBOUND_PORTS=22", "EXCLUDE_INBOUND_PORTS=2222",
     "systemd", "port 22 (SSH)"),
    ("misspelt variable in the environment file", DEFAULT, "ZRING_LOG_LEVEL=", "ZRING_LOG_LEVLE=",
     "systemd", "ZRING_LOG_LEVLE is not a zring option"),
]


def run(tree, sections):
    args = [PYTHON, str(tree / "tests/deploy/validate.py")]
    for s in sections:
        args += ["--only", s]
    env = dict(os.environ, ZRING_SRCDIR=str(tree))
    env.setdefault("ZRING_CACHE", str(SRC / ".cache"))
    return subprocess.run(args, env=env, capture_output=True, text=True)


def copy_tree(dst):
    files = subprocess.run(["git", "-C", str(SRC), "ls-files", "--cached", "--others",
                            "--exclude-standard"], capture_output=True, text=True,
                           check=True).stdout.split()
    for f in files:
        if (SRC / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(SRC / f, dst / f)
    # validate.py reads file modes from git, as docker's COPY does from disk.
    subprocess.run(["git", "init", "-q", str(dst)], check=True)
    subprocess.run(["git", "-C", str(dst), "add", "-A"], check=True)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        base = run(tree, [])
        if base.returncode != 0:
            print(base.stdout + base.stderr)
            print("the unmodified tree does not pass validate.py; nothing to mutate")
            return base.returncode if base.returncode == 77 else 1
        caught = missed = 0
        for what, rel, old, new, section, expect in MUTATIONS:
            f = tree / rel
            text = f.read_text()
            if text.count(old) < 1:
                print(f"FAIL {what}: {rel} no longer contains {old!r}; update this test")
                missed += 1
                continue
            f.write_text(text.replace(old, new, 1))
            r = run(tree, [section])
            f.write_text(text)
            out = r.stdout + r.stderr
            if r.returncode == 1 and expect in out:
                caught += 1
                print(f"ok   caught: {what}")
            else:
                missed += 1
                print(f"FAIL not caught: {what} (exit {r.returncode}, wanted {expect!r})")
                print("     " + "\n     ".join(out.strip().splitlines()[-8:]))
        print(f"{caught} passed, {missed} failed")
        return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
