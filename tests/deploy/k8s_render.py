"""Loading the YAML files of deploy/, rendering the kustomizations, and the
Kubernetes schema check (check.js)."""
import copy
import json
import shutil
import subprocess

import yaml

from common import HERE, NODE_MODULES, SRC, StrictLoader, rel, where

def load_yaml_files(report):
    docs = {}  # path -> [documents]
    problems = []
    files = sorted(p for p in (SRC / "deploy").rglob("*") if p.suffix in (".yaml", ".yml"))
    for f in files:
        try:
            loaded = [d for d in yaml.load_all(f.read_text(), Loader=StrictLoader) if d is not None]
        except yaml.YAMLError as e:
            problems.append(f"{rel(f)}: {e}")
            continue
        bad = [i for i, d in enumerate(loaded) if not isinstance(d, dict)]
        if not loaded or bad:
            problems.append(f"{rel(f)}: every document must be a mapping (and there must be one)")
            continue
        docs[f.resolve()] = loaded
    report.check(f"yaml: {len(files)} files parse, no duplicate keys", problems)
    return docs


def smp_merge(base, patch):
    """Strategic-merge the subset our patches use: maps merge, lists of named
    maps merge by name, any other list or value is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = smp_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    named = lambda xs: isinstance(xs, list) and all(isinstance(x, dict) and "name" in x for x in xs)
    if named(base) and named(patch) and patch:
        out = [copy.deepcopy(x) for x in base]
        for p in patch:
            i = next((j for j, x in enumerate(out) if x["name"] == p["name"]), None)
            if i is None:
                out.append(copy.deepcopy(p))
            else:
                out[i] = smp_merge(out[i], p)
        return out
    return copy.deepcopy(patch)


def obj_key(o):
    m = o.get("metadata") or {}
    return (o.get("kind"), m.get("namespace"), m.get("name"))


def render(kdir, docs, problems, depth=0):
    """Our rendering of kustomization directory kdir: resources, namespace,
    images, patches. Returns [(source path, object)]."""
    kfile = (kdir / "kustomization.yaml").resolve()
    if kfile not in docs or depth > 5:
        problems.append(f"{rel(kdir)}: no readable kustomization.yaml")
        return []
    k = docs[kfile][0]
    out = []
    for r in k.get("resources") or []:
        p = (kdir / r).resolve()
        if p.is_dir():
            out += render(p, docs, problems, depth + 1)
        elif p in docs:
            out += [(p, copy.deepcopy(d)) for d in docs[p]]
        else:
            problems.append(f"{rel(kfile)}: resource {r} does not exist")
    for patch in k.get("patches") or []:
        p = (kdir / patch.get("path", "")).resolve()
        if p not in docs:
            problems.append(f"{rel(kfile)}: patch {patch} does not exist")
            continue
        for pd in docs[p]:
            hits = [i for i, (_, o) in enumerate(out) if o.get("kind") == pd.get("kind")
                    and o["metadata"]["name"] == pd["metadata"]["name"]]
            if len(hits) != 1:
                problems.append(f"{rel(p)}: patch matches {len(hits)} objects, want 1")
                continue
            src, o = out[hits[0]]
            out[hits[0]] = (src, smp_merge(o, pd))
    ns = k.get("namespace")
    for _, o in out:
        if ns and o.get("kind") != "Namespace":
            o["metadata"]["namespace"] = ns
        for img in k.get("images") or []:
            for c in pod_containers(o):
                name, _, tag = c.get("image", "").partition(":")
                if name == img["name"]:
                    c["image"] = f"{img.get('newName', name)}:{img.get('newTag', tag)}"
    return out


def kustomizations(docs):
    return sorted(p.parent for p in docs if p.name == "kustomization.yaml")


def patch_files(docs):
    out = set()
    for kdir in kustomizations(docs):
        for patch in docs[(kdir / "kustomization.yaml").resolve()][0].get("patches") or []:
            out.add((kdir / patch.get("path", "")).resolve())
    return out


def check_kustomizations(report, docs):
    problems = []
    rendered = {}
    patches = patch_files(docs)
    for kdir in kustomizations(docs):
        rendered[kdir] = render(kdir, docs, problems)
        listed = {(kdir / r).resolve() for r in
                  docs[(kdir / "kustomization.yaml").resolve()][0].get("resources") or []}
        for f in kdir.iterdir():
            if f.suffix == ".yaml" and f.name != "kustomization.yaml" \
                    and f.resolve() not in listed and f.resolve() not in patches:
                problems.append(f"{rel(f)}: in {rel(kdir)} but not in its kustomization")
    report.check(f"kustomize: {len(rendered)} kustomizations resolve (resources, patches)", problems)
    return rendered


def check_kubectl_kustomize(report, rendered):
    kubectl = shutil.which("kubectl")
    name = "kustomize: `kubectl kustomize` renders the same objects as this test"
    if not kubectl:
        # Optional cross-check: the schema check below runs on our rendering.
        print(f"note {name}: kubectl not installed, not compared")
        return
    problems = []
    for kdir, ours in rendered.items():
        r = subprocess.run([kubectl, "kustomize", str(kdir)], capture_output=True, text=True)
        if r.returncode != 0:
            problems.append(f"{rel(kdir)}: {r.stderr.strip()}")
            continue
        theirs = {obj_key(o): o for o in yaml.safe_load_all(r.stdout) if o}
        mine = {obj_key(o): o for _, o in ours}
        for key in sorted(set(theirs) | set(mine), key=str):
            if json.dumps(theirs.get(key), sort_keys=True) != json.dumps(mine.get(key), sort_keys=True):
                problems.append(f"{rel(kdir)}: {key} differs between kubectl kustomize and this test")
    report.check(name, problems)


# ------------------------------------------------------------------ schema

def check_schema(report, docs, rendered):
    name = "schema: objects match the Kubernetes API (kubernetes-models + TypeScript)"
    node = shutil.which("node")
    if not node or not (NODE_MODULES / "kubernetes-models").is_dir():
        report.skip(name, f"node or {NODE_MODULES}/kubernetes-models missing: run scripts/setup.sh")
        return
    items, seen = [], set()
    patches = patch_files(docs)
    sources = [(p, d) for p, ds in docs.items() if p.name != "kustomization.yaml"
               and p not in patches for d in ds]
    for label, pairs in [("", sources)] + [(f" (rendered {rel(k)})", v) for k, v in rendered.items()]:
        for path, obj in pairs:
            blob = json.dumps(obj, sort_keys=True)
            if blob not in seen:
                seen.add(blob)
                items.append({"where": where(path, obj) + label, "obj": obj})
    r = subprocess.run([node, str(HERE / "check.js"), "k8s", str(NODE_MODULES)],
                       input=json.dumps(items), capture_output=True, text=True)
    lines = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    report.check(f"{name}: {len(items)} objects",
                 [] if r.returncode == 0 else lines)


def pod_of(obj):
    """(pod metadata, pod spec) of an object with a pod template, or None."""
    if obj.get("kind") == "Pod":
        return obj.get("metadata") or {}, obj.get("spec") or {}
    tmpl = (obj.get("spec") or {}).get("template")
    if isinstance(tmpl, dict) and "spec" in tmpl:
        return tmpl.get("metadata") or {}, tmpl["spec"]
    return None


def pod_containers(obj):
    pod = pod_of(obj)
    if not pod:
        return []
    return (pod[1].get("initContainers") or []) + (pod[1].get("containers") or [])
