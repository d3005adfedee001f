#!/usr/bin/env python3
"""Checks deploy/: the Kubernetes manifests, the Dockerfile, the systemd unit.

What a person deploying zring would check by hand, done by machine:

- every YAML file parses (strictly: a key twice in one mapping is an error,
  as it is for kubectl);
- every Kubernetes object, as written and as kustomize renders it, matches
  the Kubernetes API schema and types (tests/deploy/check.js, npm tools that
  scripts/setup.sh installs into .cache/npm); `kubectl kustomize`, when
  installed, renders the kustomizations and must agree with ours;
- the manifests agree with zring: every ZRING_* variable is one zring (or
  zring-iptables.sh) knows, ports and probe paths are zring's, the drain
  deadline is shorter than the grace period, the config file is the key of
  the mounted ConfigMap and passes `zring check`, the certificate volume has
  zring's layout, mounts name declared volumes, privileges are the ones
  docs/deploy.md justifies and no more, no RBAC, images carry zring's version;
- the node agent serves its own node's pods of the shared config: ZRING_NODE
  comes from spec.nodeName, and each pod it may serve names a valid node, a
  namespace under a mounted directory (one pod per namespace) and an
  identity whose certificate the agent mounts;
- the Dockerfile lints clean, its COPY sources exist and are in the build
  context, a configure of that context succeeds, and its runtime packages
  provide every shared library the zring binary needs;
- the systemd unit passes `systemd-analyze verify` and an offline security
  review, allows io_uring, leaves /proc/stat visible, stops later than zring
  drains.

Usage: validate.py [--only SECTION]...
(environment: ZRING_SRCDIR, ZRING_BIN, ZRING_CACHE, CI)
Exit: 0 all passed, 1 something failed, 77 a tool was missing (outside CI;
with CI=true a missing tool is a failure).
"""
import argparse
import sys

from common import ZRING, Report, zring_help
from image_unit import check_dockerfile, check_systemd
from k8s_refs import check_cross_refs
from k8s_render import (check_kubectl_kustomize, check_kustomizations, check_schema,
                        load_yaml_files)

SECTIONS = ("yaml", "schema", "dockerfile", "manifests", "systemd")


def main():
    ap = argparse.ArgumentParser(description="Check deploy/ (see the top of this file).")
    ap.add_argument("--only", action="append", choices=SECTIONS,
                    help="run only these sections (default: all)")
    only = set(ap.parse_args().only or SECTIONS)
    report = Report()
    if not ZRING.exists():
        print(f"no zring binary at {ZRING} (set ZRING_BIN)")
        return 1
    # Parsing and rendering feed every manifest check, so they always run.
    docs = load_yaml_files(report)
    rendered = check_kustomizations(report, docs)
    if "yaml" in only:
        check_kubectl_kustomize(report, rendered)
    if "schema" in only:
        check_schema(report, docs, rendered)
    dockerfile = check_dockerfile(report, full="dockerfile" in only)
    if "manifests" in only:
        check_cross_refs(report, docs, rendered, dockerfile)
    if "systemd" in only:
        check_systemd(report, zring_help()[0])
    line = f"{report.passed} passed, {report.failed} failed"
    if report.skipped:
        line += f", {report.skipped} skipped"
    print(line)
    if report.failed:
        return 1
    return 77 if report.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
