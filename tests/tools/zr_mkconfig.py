#!/usr/bin/python3
"""Writes small zring workload configs (ztunnel local-config JSON) for the e2e scenarios.

    zr_mkconfig.py --service echo,10.96.0.10,80=8080 \\
                   --workload ep1,10.77.0.11,echo \\
                   --workload ep2,10.77.0.12,echo,cap=2 \\
                   --workload ep3,10.77.0.13,echo,unhealthy,map=80=9090 >cfg.json

  --service NAME,VIP[+VIP...],PORT=TARGET[+PORT=TARGET...]
      A service "NAME" in namespace e2e (hostname NAME.e2e.svc.cluster.local)
      with those VIPs (network "") and that port map.
  --workload NAME,IP[+IP...][,OPTION...]
      A workload "NAME" in namespace e2e with those addresses. Options:
        SERVICE        a service NAME it belongs to (an endpoint of it)
        cap=N          capacity (weight among the service's endpoints)
        unhealthy      status Unhealthy
        hbone          protocol HBONE (default TCP)
        map=PORT=TGT   its own target port for PORT of every service it is in
                       (wins over the service's port map)
  --bulk N
      N more workloads bulk0..bulkN-1 (no service), one address each from
      10.128.0.0/9 (bulkI gets 10.128.0.0 + I): a large config for the
      reload scenarios.
  --bulk-ip ADDR
      give every bulk workload this one address instead (an invalid file:
      duplicate addresses).
  --revision TEXT
      the first workload's canonicalRevision: makes otherwise equal files
      differ (zring ignores a rewrite with the same bytes).

Services listed by a workload must exist (and every service must have at
least one workload): zring would load such a file, with a warning for each
(docs/config.md, "Invalid or only reported"), and the scenarios want none.
Writes the JSON to stdout, or atomically to --out FILE.
"""

import argparse
import json
import os
import sys

NS = "e2e"


def hostname(svc):
    return f"{svc}.{NS}.svc.cluster.local"


def parse_ports(spec):
    out = {}
    for pair in spec.split("+"):
        port, _, target = pair.partition("=")
        out[str(int(port))] = int(target) if target else int(port)
    return out


def parse_service(spec):
    parts = spec.split(",")
    if len(parts) != 3:
        raise SystemExit(f"bad --service {spec!r}: want NAME,VIP[+VIP],PORT=TARGET[+...]")
    name, vips, ports = parts
    return {
        "name": name,
        "namespace": NS,
        "hostname": hostname(name),
        "vips": ["/" + v for v in vips.split("+")],
        "ports": parse_ports(ports),
    }


def parse_workload(spec, services):
    parts = spec.split(",")
    if len(parts) < 2:
        raise SystemExit(f"bad --workload {spec!r}: want NAME,IP[+IP][,OPTION...]")
    name, ips = parts[0], parts[1].split("+")
    w = {
        "uid": f"e2e//v1/Pod/{NS}/{name}",
        "name": name,
        "namespace": NS,
        "workloadIps": ips,
        "protocol": "TCP",
        "workloadName": name,
        "canonicalName": name,
    }
    member, own = [], {}
    for opt in parts[2:]:
        if opt.startswith("cap="):
            w["capacity"] = int(opt[4:])
        elif opt == "unhealthy":
            w["status"] = "Unhealthy"
        elif opt == "hbone":
            w["protocol"] = "HBONE"
        elif opt.startswith("map="):
            own.update(parse_ports(opt[4:]))
        elif opt in services:
            member.append(opt)
        else:
            raise SystemExit(f"--workload {spec!r}: unknown option or service {opt!r}")
    if member:
        w["services"] = {}
        for svc in member:
            ports = dict(services[svc]["ports"])
            ports.update({p: t for p, t in own.items() if p in ports})
            w["services"][f"{NS}/{hostname(svc)}"] = ports
    return w


def bulk_workload(i, ip):
    if ip is None:
        n = (10 << 24) + (128 << 16) + i
        ip = ".".join(str(n >> s & 255) for s in (24, 16, 8, 0))
    name = f"bulk{i}"
    return {"uid": f"e2e//v1/Pod/{NS}/{name}", "name": name, "namespace": NS,
            "workloadIps": [ip], "protocol": "TCP"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__)
    ap.add_argument("--service", action="append", default=[])
    ap.add_argument("--workload", action="append", default=[])
    ap.add_argument("--bulk", type=int, default=0)
    ap.add_argument("--bulk-ip")
    ap.add_argument("--revision", default="")
    ap.add_argument("--out", help="write here (temp file + rename) instead of stdout")
    a = ap.parse_args()
    services = {}
    for spec in a.service:
        s = parse_service(spec)
        services[s["name"]] = s
    workloads = [parse_workload(spec, services) for spec in a.workload]
    if a.bulk > (1 << 23):
        raise SystemExit("--bulk: at most 8388608 (10.128.0.0/9)")
    workloads += [bulk_workload(i, a.bulk_ip) for i in range(a.bulk)]
    if a.revision and workloads:
        workloads[0]["canonicalRevision"] = a.revision
    doc = {"workloads": workloads, "services": list(services.values()), "policies": []}
    text = json.dumps(doc, indent=None if a.bulk else 2) + "\n"
    if a.out:
        tmp = a.out + ".mk-tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, a.out)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
