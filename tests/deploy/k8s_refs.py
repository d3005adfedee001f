"""Cross-references between the manifests and zring: options, ports,
probes, drain deadline, config, certificates, privileges, volumes, RBAC."""
import json
import re
import subprocess

from common import (CAPS_IPTABLES, CAPS_NODE_AGENT, CAPS_SIDECAR, METRICS_PATHS, NETNS_DIRS,
                    READY_PATH, ZRING, duration_ms, iptables_env, ports_of, rel, where, zring_help,
                    zring_version)
from k8s_render import kustomizations, patch_files, pod_containers, pod_of


# What a Kubernetes node may be called (a DNS subdomain, RFC 1123), and so
# what spec.nodeName, and with it a node agent's ZRING_NODE, can be.
NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def is_zring_image(c):
    return c.get("image", "").split(":")[0].rsplit("/", 1)[-1] == "zring"


def runs_iptables(c):
    return is_zring_image(c) and (c.get("command") or [""])[0].endswith("zring-iptables.sh")


def runs_zring(c):
    return is_zring_image(c) and not runs_iptables(c)


def env_of(c):
    """The container's env as Kubernetes resolves it: $(VAR) expands to a
    variable defined earlier in the list. Returns (values, problems)."""
    values, problems = {}, []
    for e in c.get("env") or []:
        if "value" in e:
            def sub(m):
                if m.group(1) not in values:
                    problems.append(f"env {e['name']}: $({m.group(1)}) is not defined before it "
                                    "(Kubernetes would leave it unexpanded)")
                return "{" + m.group(1) + "}"
            values[e["name"]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, str(e["value"]))
        else:
            values[e["name"]] = None  # valueFrom: known only at run time
    return values, problems


def env_field(c, var, depth=0):
    """The downward-API fieldPath that var's value comes from, directly or
    through a value that is just $(OTHER); None if it does not."""
    entries = {e["name"]: e for e in c.get("env") or []}
    e = entries.get(var)
    if not e or depth > len(entries):
        return None
    ref = (e.get("valueFrom") or {}).get("fieldRef")
    if ref:
        return ref.get("fieldPath")
    m = re.fullmatch(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(e.get("value", "")))
    return env_field(c, m.group(1), depth + 1) if m else None


def env_source(c, var):
    e = next(e for e in reversed(c.get("env") or []) if e["name"] == var)
    return f"value {e['value']!r}" if "value" in e else f"valueFrom {json.dumps(e.get('valueFrom'))}"


def mount_for(c, path):
    for m in c.get("volumeMounts") or []:
        if m.get("mountPath") == path:
            return m
    return None


def volume(spec, name):
    return next((v for v in spec.get("volumes") or [] if v.get("name") == name), None)


class Manifests:
    """Every object of every manifest set, with where it came from."""

    def __init__(self, docs, rendered):
        patches = patch_files(docs)
        in_kustomization = {p for objs in rendered.values() for p, _ in objs}
        self.sets = {rel(k): [(p, o) for p, o in objs] for k, objs in rendered.items()}
        for p, ds in docs.items():
            if p.name != "kustomization.yaml" and p not in patches and p not in in_kustomization:
                self.sets[rel(p)] = [(p, d) for d in ds]

    def configmap(self, set_name, namespace, name):
        for _, o in self.sets[set_name]:
            m = o.get("metadata") or {}
            if o.get("kind") == "ConfigMap" and m.get("name") == name \
                    and m.get("namespace", "default") == namespace:
                return o
        return None


def check_zring_container(ms, set_name, path, obj, c, known, defaults, version):
    """Problems of one container that runs zring."""
    meta, spec = pod_of(obj)
    ns = (obj.get("metadata") or {}).get("namespace", "default")
    env, problems = env_of(c)
    w = f"{where(path, obj)} container {c['name']}"
    for var in env:
        if var.startswith("ZRING_") and var not in known:
            problems.append(f"{w}: env {var} is not a zring option (zring --help)")
    node_agent = str(env.get("ZRING_NODE_AGENT")).lower() in ("1", "true", "yes", "on")
    get = lambda var: env.get(var) or defaults.get(var)

    # Ports: only what zring listens on in this container's own namespace.
    listening = ports_of(get("ZRING_METRICS")) | ports_of(get("ZRING_READINESS"))
    if not node_agent:
        listening |= ports_of(get("ZRING_OUTBOUND")) | ports_of(get("ZRING_INBOUND"))
        if env.get("ZRING_CERTS"):
            listening |= ports_of(get("ZRING_HBONE"))
    named = {}
    for p in c.get("ports") or []:
        named[p.get("name")] = p["containerPort"]
        if p["containerPort"] not in listening:
            problems.append(f"{w}: containerPort {p['containerPort']} is not a port zring listens on "
                            f"here ({sorted(listening)})")
    ready_port = min(ports_of(get("ZRING_READINESS")), default=None)
    for kind in ("readinessProbe", "startupProbe", "livenessProbe"):
        probe = c.get(kind)
        if not probe:
            if kind == "readinessProbe":
                problems.append(f"{w}: no readinessProbe")
            continue
        hg = probe.get("httpGet") or {}
        port = named.get(hg.get("port"), hg.get("port"))
        if hg.get("path") != READY_PATH or port != ready_port:
            problems.append(f"{w}: {kind} is {hg.get('path')}:{port}, zring's readiness is "
                            f"{READY_PATH}:{ready_port}")
    ann = meta.get("annotations") or {}
    metrics_port = min(ports_of(get("ZRING_METRICS")), default=None)
    if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != str(metrics_port) \
            or ann.get("prometheus.io/path") not in METRICS_PATHS:
        problems.append(f"{w}: prometheus.io annotations must scrape :{metrics_port} "
                        f"{sorted(METRICS_PATHS)}, have {ann}")

    drain = duration_ms(get("ZRING_DRAIN_TIMEOUT"))
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if drain is None or drain >= grace * 1000:
        problems.append(f"{w}: drain timeout {get('ZRING_DRAIN_TIMEOUT')} must be shorter than "
                        f"terminationGracePeriodSeconds {grace}")

    config_problems, configs = check_config(ms, set_name, w, ns, spec, c, env.get("ZRING_CONFIG"))
    cert_problems, ids = check_certs(w, spec, c, env.get("ZRING_CERTS"))
    problems += config_problems + cert_problems
    problems += check_security(w, spec, c, CAPS_NODE_AGENT if node_agent else CAPS_SIDECAR,
                               required={"NET_ADMIN", "SYS_ADMIN"} if node_agent else {"NET_ADMIN"})
    if node_agent:
        problems += check_netns_mounts(w, spec, c)
        node_problems = check_node_env(w, c, env)
        problems += node_problems
        problems += check_served(w, spec, c, configs, not node_problems,
                                 None if cert_problems else ids)
    if c.get("image", "").rsplit(":", 1)[-1] != version:
        problems.append(f"{w}: image {c.get('image')} does not carry zring's version {version}")
    return problems


def check_config(ms, set_name, w, ns, spec, c, cfg):
    """Problems of the config file a zring container reads, and
    [(ConfigMap key, parsed JSON)] if the file passes `zring check`."""
    if not cfg:
        return [f"{w}: no ZRING_CONFIG"], []
    d, _, fname = cfg.rpartition("/")
    m = mount_for(c, d)
    if not m:
        return [f"{w}: ZRING_CONFIG {cfg}: no volume mounted at {d}"], []
    problems = []
    if m.get("subPath"):
        problems.append(f"{w}: {d} is a subPath mount, which never sees ConfigMap updates")
    vol = volume(spec, m["name"]) or {}
    if "configMap" not in vol:
        return problems + [f"{w}: {d} is not a ConfigMap volume"], []
    cm = ms.configmap(set_name, ns, vol["configMap"]["name"])
    if not cm:
        return problems + [f"{w}: ConfigMap {ns}/{vol['configMap']['name']} is not in {set_name}"], []
    # One key, the same for every replica or agent: a name built from a
    # variable (one key per node, $(ZRING_NODE).json) is known only at run
    # time and cannot be checked here.
    keys = sorted((cm.get("data") or {}).keys())
    name = cm["metadata"]["name"]
    if fname not in keys:
        vars_ = re.findall(r"\{([A-Za-z_0-9]+)\}", fname)
        why = f"; its name depends on $({vars_[0]}), known only at run time" if vars_ else ""
        problems.append(f"{w}: ZRING_CONFIG {cfg}: ConfigMap {name} has no key {fname} "
                        f"({keys}){why}")
    for k in keys:
        if k != fname:
            problems.append(f"{w}: ConfigMap key {k} is never read (ZRING_CONFIG {cfg})")
    if fname not in keys:
        return problems, []
    r = subprocess.run([str(ZRING), "check", "-"], input=cm["data"][fname],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return problems + [f"{w}: ConfigMap key {fname}: zring check: {r.stderr.strip()}"], []
    return problems, [(fname, json.loads(cm["data"][fname]))]


def check_node_env(w, c, env):
    """A node agent reads the whole mesh: it must know its own node's name."""
    if "ZRING_NODE" not in env:
        return [f"{w}: no ZRING_NODE: the agent would try to serve the pods of every node in "
                "its config (set it from the downward API, fieldRef spec.nodeName)"]
    if env_field(c, "ZRING_NODE") != "spec.nodeName":
        return [f"{w}: ZRING_NODE comes from {env_source(c, 'ZRING_NODE')}, not the downward "
                "API's spec.nodeName: the agent would serve another node's pods, or none"]
    return []


def check_served(w, spec, c, configs, by_node, ids):
    """The pods a node agent serves: each namespace lies under a mounted
    directory; with ZRING_NODE, each pod names a node an agent can be on;
    one pod per namespace on a node; a certificate for every identity
    (ids: those of the certificate volume, or None if it is broken)."""
    problems = []
    dirs = mounted_netns(spec, c)
    for key, cfg in configs:
        seen = {}
        for wl in cfg.get("workloads", []):
            netns, node = wl.get("zringNetns"), wl.get("node", "")
            if not netns:
                continue
            at = f"{w}: {key}: workload {wl['uid']}"
            if not any(netns.startswith(x + "/") for x in dirs):
                problems.append(f"{at}: zringNetns {netns} is under no mounted netns directory")
            if by_node and not node:
                problems.append(f"{at} has a zringNetns but no node: no agent serves it")
            elif by_node and not (len(node) <= 253 and NODE_NAME.fullmatch(node)):
                problems.append(f"{at}: node {node!r} is not a Kubernetes node name (a lowercase "
                                "RFC 1123 subdomain): no agent's ZRING_NODE equals it")
            first = seen.setdefault((node if by_node else "", netns), wl["uid"])
            if first != wl["uid"]:
                problems.append(f"{at} and {first} share the zringNetns {netns}"
                                f"{f' on node {node}' if by_node else ''}: the agent serves only one")
            ident = (f"{wl.get('trustDomain') or 'cluster.local'}/ns/{wl['namespace']}"
                     f"/sa/{wl.get('serviceAccount') or 'default'}")
            if ids is not None and ident not in ids:
                problems.append(f"{at}: identity {ident} has no certificate in the certs volume, "
                                "so its HBONE connections fail")
    return problems


def mounted_netns(spec, c):
    dirs = []
    for m in c.get("volumeMounts") or []:
        vol = volume(spec, m["name"]) or {}
        if "hostPath" in vol:
            dirs.append(m["mountPath"])
    if spec.get("hostPID"):
        dirs.append("/proc")
    return dirs


def check_certs(w, spec, c, certs):
    """Problems of the certificate volume, and the identities it holds
    ("<td>/ns/<ns>/sa/<sa>", each with both files)."""
    if not certs:
        return [f"{w}: no ZRING_CERTS"], set()
    m = mount_for(c, certs)
    if not m:
        return [f"{w}: ZRING_CERTS {certs}: nothing mounted there"], set()
    vol = volume(spec, m["name"]) or {}
    if m.get("subPath"):
        return [f"{w}: {certs} is a subPath mount, which never sees Secret updates"], set()
    if "projected" in vol:
        items = [i["path"] for s in vol["projected"]["sources"] for i in (s.get("secret") or {}).get("items", [])]
    elif "secret" in vol:
        items = [i["path"] for i in vol["secret"].get("items", [])]
    else:
        return [f"{w}: {certs} is not a Secret or projected volume"], set()
    problems = []
    if "root-cert.pem" not in items:
        problems.append(f"{w}: {certs} has no root-cert.pem")
    ids = {}
    for p in items:
        if p == "root-cert.pem":
            continue
        mm = re.fullmatch(r"([a-z0-9._-]+/ns/[A-Za-z0-9._-]+/sa/[A-Za-z0-9._-]+)/(cert-chain|key)\.pem", p)
        if not mm:
            problems.append(f"{w}: {certs}/{p} is not <td>/ns/<ns>/sa/<sa>/(cert-chain|key).pem")
            continue
        ids.setdefault(mm.group(1), set()).add(mm.group(2))
    for ident, files in ids.items():
        if files != {"cert-chain", "key"}:
            problems.append(f"{w}: identity {ident} has {sorted(files)}, needs cert-chain and key")
    if not ids:
        problems.append(f"{w}: {certs} holds no identity")
    return problems, {i for i, files in ids.items() if files == {"cert-chain", "key"}}


def check_security(w, spec, c, allowed, required):
    sc = c.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    add = set(caps.get("add") or [])
    if spec.get("hostPID"):
        allowed = allowed | {"SYS_PTRACE"}
    problems = []
    if sc.get("privileged"):
        problems.append(f"{w}: privileged")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{w}: allowPrivilegeEscalation must be false")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{w}: readOnlyRootFilesystem must be true")
    if caps.get("drop") != ["ALL"]:
        problems.append(f"{w}: capabilities.drop must be [ALL]")
    if add - allowed:
        problems.append(f"{w}: adds {sorted(add - allowed)}, beyond {sorted(allowed)}")
    if required - add:
        problems.append(f"{w}: lacks {sorted(required - add)}, which it cannot run without")
    return problems


def check_netns_mounts(w, spec, c):
    problems = []
    seen = set()
    for m in c.get("volumeMounts") or []:
        vol = volume(spec, m["name"]) or {}
        if "hostPath" not in vol:
            continue
        seen.add(m["mountPath"])
        if vol["hostPath"]["path"] != m["mountPath"]:
            problems.append(f"{w}: hostPath {vol['hostPath']['path']} mounted at {m['mountPath']}: "
                            "zringNetns paths are host paths, so they must match")
        if m.get("mountPropagation") != "HostToContainer" or m.get("readOnly") is not True:
            problems.append(f"{w}: {m['mountPath']} must be readOnly with HostToContainer propagation")
    if seen != NETNS_DIRS:
        problems.append(f"{w}: hostPath mounts {sorted(seen)}, want {sorted(NETNS_DIRS)}")
    return problems


def check_iptables_container(path, obj, c, script_env, script_dest):
    w = f"{where(path, obj)} container {c['name']}"
    _, spec = pod_of(obj)
    env, problems = env_of(c)
    for var in env:
        if var not in script_env:
            problems.append(f"{w}: env {var} is not read by zring-iptables.sh")
    cmd = (c.get("command") or []) + (c.get("args") or [])
    if cmd[:2] != [script_dest, "install"]:
        problems.append(f"{w}: runs {cmd}, want [{script_dest}, install] (the image's copy)")
    problems += check_security(w, spec, c, CAPS_IPTABLES, required=CAPS_IPTABLES)
    return problems


def check_pod(path, obj):
    """Mounts name declared volumes, volumes are used, sidecar ordering."""
    _, spec = pod_of(obj)
    w = where(path, obj)
    problems = []
    declared = [v["name"] for v in spec.get("volumes") or []]
    used = set()
    for c in pod_containers(obj):
        paths = [m["mountPath"] for m in c.get("volumeMounts") or []]
        if len(paths) != len(set(paths)):
            problems.append(f"{w} container {c['name']}: a mount path twice")
        for m in c.get("volumeMounts") or []:
            used.add(m["name"])
            if m["name"] not in declared:
                problems.append(f"{w} container {c['name']}: mounts undeclared volume {m['name']}")
    for v in declared:
        if v not in used:
            problems.append(f"{w}: volume {v} is mounted by no container")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{w}: automountServiceAccountToken must be false (zring calls no API)")
    inits = spec.get("initContainers") or []
    ipt = [i for i, c in enumerate(inits) if runs_iptables(c)]
    zr = [i for i, c in enumerate(inits) if runs_zring(c)]
    if ipt and zr and not ipt[0] < zr[0]:
        problems.append(f"{w}: the iptables init container must run before the zring sidecar")
    for i in zr:
        if inits[i].get("restartPolicy") != "Always":
            problems.append(f"{w}: zring as an init container must be a native sidecar (restartPolicy Always)")
    return problems


def check_cross_refs(report, docs, rendered, dockerfile):
    known, defaults = zring_help()
    script_env = iptables_env()
    version = zring_version()
    ms = Manifests(docs, rendered)
    groups = {"zring containers agree with zring's options, ports, probes, config and certs": [],
              "iptables init containers run the image's script with known settings": [],
              "pods: mounts, volumes, tokens, sidecar order": [],
              "rbac: none, and service accounts mount no token": []}
    keys = list(groups)
    counts = {"zring": 0, "iptables": 0}
    for set_name, objs in ms.sets.items():
        for path, obj in objs:
            kind = obj.get("kind", "")
            if kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
                groups[keys[3]].append(f"{where(path, obj)}: zring reads no API object; no RBAC wanted")
            if kind == "ServiceAccount" and obj.get("automountServiceAccountToken") is not False:
                groups[keys[3]].append(f"{where(path, obj)}: automountServiceAccountToken must be false")
            if not pod_of(obj):
                continue
            groups[keys[2]] += check_pod(path, obj)
            for c in pod_containers(obj):
                if runs_zring(c):
                    counts["zring"] += 1
                    groups[keys[0]] += check_zring_container(ms, set_name, path, obj, c,
                                                             known, defaults, version)
                    if c.get("command") and c["command"][0] != dockerfile.get("entrypoint"):
                        groups[keys[0]].append(f"{where(path, obj)}: command {c['command'][0]} is not "
                                               "the image's zring")
                elif runs_iptables(c):
                    counts["iptables"] += 1
                    groups[keys[1]] += check_iptables_container(path, obj, c, script_env,
                                                                dockerfile.get("script"))
    if counts["zring"] < 2 or counts["iptables"] < 1:
        groups[keys[0]].append(f"found {counts['zring']} zring and {counts['iptables']} iptables "
                               "containers; expected the node agent, the sidecar and its init container")
    for name, problems in groups.items():
        report.check(f"manifests: {name}", problems)
    report.check("manifests: kustomize images and tags are zring's version",
                 check_kustomize_images(docs, version))


def check_kustomize_images(docs, version):
    problems = []
    for kdir in kustomizations(docs):
        for img in docs[(kdir / "kustomization.yaml").resolve()][0].get("images") or []:
            if img.get("name") == "zring" and str(img.get("newTag")) != version:
                problems.append(f"{rel(kdir)}: images newTag {img.get('newTag')} != zring {version}")
    return problems
