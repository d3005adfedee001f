"""Shared by the tests/deploy checks: where things are, what zring says of
itself, and how results are reported."""
import os
import re
import subprocess
from pathlib import Path

import yaml

SRC = Path(os.environ.get("ZRING_SRCDIR") or Path(__file__).resolve().parents[2])
ZRING = Path(os.environ.get("ZRING_BIN") or SRC / "build" / "zring")
CACHE = Path(os.environ.get("ZRING_CACHE") or SRC / ".cache")
NODE_MODULES = CACHE / "npm" / "node_modules"
IN_CI = os.environ.get("CI", "").lower() == "true"
HERE = Path(__file__).resolve().parent

READY_PATH = "/healthz/ready"
METRICS_PATHS = {"/metrics", "/stats/prometheus"}
NETNS_DIRS = {"/var/run/netns", "/var/run/zring/netns"}
# Capabilities each kind of container may add (docs/deploy.md says why).
CAPS_NODE_AGENT = {"NET_ADMIN", "SYS_ADMIN"}
CAPS_SIDECAR = {"NET_ADMIN"}
CAPS_IPTABLES = {"NET_ADMIN"}


class Report:
    """Collects named checks; each passes, fails with reasons, or is skipped."""

    def __init__(self):
        self.passed, self.failed, self.skipped = 0, 0, 0

    def check(self, name, problems):
        if problems:
            self.failed += 1
            print(f"FAIL {name}")
            for p in problems:
                print(f"     {p}")
        else:
            self.passed += 1
            print(f"ok   {name}")

    def skip(self, name, why):
        if IN_CI:
            self.check(name, [f"cannot run under CI: {why}"])
            return
        self.skipped += 1
        print(f"SKIP {name}: {why}")


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping."""


def _strict_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def rel(path):
    return str(Path(path).resolve().relative_to(SRC))


def where(path, obj):
    meta = obj.get("metadata") or {}
    return f"{rel(path)} [{obj.get('kind')} {meta.get('name')}]"


def zring_help():
    r = subprocess.run([str(ZRING), "--help"], capture_output=True, text=True)
    text = r.stdout + r.stderr
    defaults = {}
    for line in text.splitlines():
        m = re.search(r"\[(ZRING_[A-Z0-9_]+)\]\s*$", line)
        if m:
            d = re.search(r"\(default:? ([^);]*)", line)
            defaults[m.group(1)] = d.group(1) if d else None
    return set(defaults), defaults


def iptables_env():
    out = subprocess.run(["bash", str(SRC / "deploy/iptables/zring-iptables.sh"), "--help"],
                         capture_output=True, text=True).stdout
    return set(re.findall(r"\[(ZRING_IPTABLES_[A-Z0-9_]+)\]", out))


def zring_version():
    out = subprocess.run([str(ZRING), "--version"], capture_output=True, text=True).stdout
    return out.split()[-1] if out.split() else ""


def duration_ms(s):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", str(s).strip())
    if not m:
        return None
    unit = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, None: 1000}[m.group(2)]
    return int(m.group(1)) * unit


def ports_of(addrs):
    """'0.0.0.0:15001,[::]:15001' -> {15001}"""
    return {int(p) for p in re.findall(r":(\d+)(?:,|$)", str(addrs))}

