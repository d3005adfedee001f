#!/usr/bin/env python3
"""Issue 18 measurements, read-only over a zring checkout (default /work/main).

Prints: per-file zring includes, module call graph (cross-module calls of
exported functions), strongly connected components, and cross-module struct
field accesses (heuristic type resolution per function).

Usage: python3 analyze.py [ROOT] [--fields-tsv FILE]
"""
import os, re, sys, collections

ROOT = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith('--') else '/work/main'
SRC = os.path.join(ROOT, 'src')
INC = os.path.join(ROOT, 'include', 'zring')

def read(p):
    with open(p) as f:
        return f.read()

def strip_comments(s):
    s = re.sub(r'/\*.*?\*/', lambda m: re.sub(r'[^\n]', ' ', m.group(0)), s, flags=re.S)
    s = re.sub(r'//[^\n]*', '', s)
    # strings -> empty (keep quotes)
    s = re.sub(r'"(?:\\.|[^"\\\n])*"', '""', s)
    s = re.sub(r"'(?:\\.|[^'\\\n])'", "' '", s)
    return s

# Module of a file: group the split files with their module.
GROUP = {
    'config_fields': 'config', 'config_json': 'config', 'config_model': 'config',
    'config_policy': 'config', 'config_shapes': 'config', 'config_validate': 'config',
    'config_write': 'config', 'config_yaml': 'config', 'config_int': 'config',
    'policy_code': 'policy', 'policy_int': 'policy',
    'metrics_render': 'metrics', 'admin_dump': 'admin', 'http_request': 'http',
    'pump_copy': 'pump', 'pump_splice': 'pump',
}
def module_of(path):
    b = os.path.splitext(os.path.basename(path))[0]
    return GROUP.get(b, b)

cfiles = sorted(os.path.join(SRC, f) for f in os.listdir(SRC) if f.endswith('.c'))
hfiles = sorted(os.path.join(INC, f) for f in os.listdir(INC) if f.endswith('.h')) + \
         sorted(os.path.join(SRC, f) for f in os.listdir(SRC) if f.endswith('.h'))
text = {p: read(p) for p in cfiles + hfiles}
code = {p: strip_comments(t) for p, t in text.items()}

def includes(p):
    out = []
    for m in re.finditer(r'^#include\s+"([^"]+)"', text[p], re.M):
        out.append(m.group(1).replace('zring/', ''))
    return out

# ---------------------------------------------------------------- includes
print('## includes (file -> zring headers)')
for p in cfiles + hfiles:
    inc = includes(p)
    print(f'{os.path.relpath(p, ROOT)}\t{len(inc)}\t{" ".join(inc)}')

# ---------------------------------------------------------------- functions
# exported (non-static) function definitions in .c files
defn = {}
for p in cfiles:
    for m in re.finditer(r'^(?!static)[A-Za-z_][\w \*]*?\b([a-z_]\w*)\s*\([^;{]*\)\s*\{', code[p], re.M):
        name = m.group(1)
        if name in ('if', 'for', 'while', 'switch', 'return', 'sizeof'):
            continue
        defn.setdefault(name, module_of(p))
# static inline in headers
for p in hfiles:
    for m in re.finditer(r'static inline [\w \*]*?\b([a-z_]\w*)\s*\(', code[p]):
        defn.setdefault(m.group(1), module_of(p))
# extern data (ops tables)
for p in cfiles:
    for m in re.finditer(r'^const struct \w+ (\w+)\s*=', code[p], re.M):
        defn.setdefault(m.group(1), module_of(p))

calls = collections.defaultdict(lambda: collections.Counter())
callsites = collections.defaultdict(list)
for p in cfiles:
    mod = module_of(p)
    for m in re.finditer(r'\b([a-z_]\w*)\b', code[p]):
        n = m.group(1)
        if n in defn and defn[n] != mod:
            calls[(mod, defn[n])][n] += 1
            callsites[(mod, defn[n])].append((os.path.basename(p), n))
print('\n## module call graph (caller -> callee: functions/symbols used)')
edges = collections.defaultdict(set)
for (a, b), cnt in sorted(calls.items()):
    edges[a].add(b)
    print(f'{a} -> {b}\t{sum(cnt.values())}\t' + ', '.join(f'{k}' for k in sorted(cnt)))

# include edges at module level (a .c including a header of another module)
incl_edges = collections.defaultdict(set)
for p in cfiles:
    a = module_of(p)
    for h in includes(p):
        b = module_of(h)
        if b != a:
            incl_edges[a].add(b)

def sccs(edges):
    idx = {}; low = {}; st = []; on = set(); out = []; i = [0]
    nodes = set(edges) | {b for v in edges.values() for b in v}
    sys.setrecursionlimit(10000)
    def strong(v):
        idx[v] = low[v] = i[0]; i[0] += 1; st.append(v); on.add(v)
        for w in edges.get(v, ()):
            if w not in idx:
                strong(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            comp = []
            while True:
                w = st.pop(); on.discard(w); comp.append(w)
                if w == v: break
            out.append(sorted(comp))
    for v in sorted(nodes):
        if v not in idx: strong(v)
    return [c for c in out if len(c) > 1]

print('\n## call-graph cycles (SCCs with >1 module)')
for c in sccs(edges):
    print(' '.join(c))
print('\n## include-graph cycles (.c of A includes header of B; SCCs)')
for c in sccs(incl_edges):
    print(' '.join(c))

# ---------------------------------------------------------------- structs
# struct name -> (module, {field: type or None})
structs = {}
for p in hfiles + cfiles:
    for m in re.finditer(r'^struct (\w+) \{(.*?)^\};', code[p], re.M | re.S):
        name, body = m.group(1), m.group(2)
        fields = {}
        for line in body.split(';'):
            line = line.strip()
            if not line:
                continue
            tm = re.match(r'(?:const\s+)?(?:_Atomic\s+)?struct (\w+)\s+(.*)', line)
            if tm:
                t = tm.group(1)
                for d in tm.group(2).split(','):
                    d = d.strip()
                    ptr = d.startswith('*')
                    nm = re.match(r'\**\s*(?:const\s+)?(\w+)', d)
                    if nm:
                        fields[nm.group(1)] = (t, ptr)
            else:
                for d in re.sub(r'\[[^\]]*\]', '', line).split(','):
                    nm = re.findall(r'(\w+)\s*$', d.strip())
                    if nm:
                        fields[nm[0]] = (None, False)
        structs.setdefault(name, (module_of(p), fields))

# per-function variable types
KW = r'(?!(?:struct|enum|const|unsigned|int|char|bool|void|uint\d+_t|size_t|long)\b)'
DECL = re.compile(r'(?:const\s+)?struct (\w+)\s+(\*?\s*(?:const\s+)?' + KW + r'\w+(?:\[[^\]]*\])?(?:\s*=[^,;()]*(?:\([^()]*\)[^,;()]*)*)?(?:,\s*\*\s*(?:const\s+)?' + KW + r'\w+(?:\s*=[^,;()]*)?)*)')
def funcs(src):
    # top-level function bodies: signature line(s) + { ... } at column 0
    for m in re.finditer(r'^([^\n;{}#][^;{}]*?)\n?\{\n(.*?)^\}', src, re.M | re.S):
        yield m.group(1), m.group(2), src[:m.start(2)].count('\n')

field_hits = []
ACCESS = re.compile(r'\b([a-z_]\w*)((?:\s*(?:->|\.)\s*[A-Za-z_]\w*)+)')
for p in cfiles:
    mod = module_of(p)
    for sig, body, line0 in funcs(code[p]):
        fname = re.findall(r'(\w+)\s*\(', sig)
        fname = fname[0] if fname else '?'
        vt = {}
        for m in DECL.finditer(sig + '\n' + body):
            t = m.group(1)
            g = m.group(2)
            while re.search(r'\([^()]*\)', g):
                g = re.sub(r'\([^()]*\)', '', g)
            for d in g.split(','):
                nm = re.match(r'\s*\**\s*(?:const\s+)?(\w+)', d)
                if nm:
                    vt[nm.group(1)] = t
        for m in ACCESS.finditer(body):
            base = m.group(1)
            if base not in vt:
                continue
            t = vt[base]
            chain = re.findall(r'(->|\.)\s*(\w+)', m.group(2))
            for op, f in chain:
                if t not in structs:
                    break
                owner, fields = structs[t]
                if f not in fields:
                    break
                if owner != mod:
                    lno = line0 + body[:m.start()].count('\n') + 1
                    field_hits.append((os.path.relpath(p, ROOT), lno, fname, mod, t, owner, f))
                t = fields[f][0]
                if t is None:
                    break

DATAPLANE = {'worker', 'conn', 'tunnel', 'listener', 'pump_dir', 'metrics', 'bufring',
             'pipepool', 'nodeagent_inbox', 'tls', 'chunk', 'metrics_series', 'http_server'}
print('\n## cross-module field accesses on data-plane structs')
cnt = collections.Counter()
for h in field_hits:
    if h[4] in DATAPLANE:
        cnt[(h[3], h[4])] += 1
for (mod, t), n in sorted(cnt.items(), key=lambda x: (-x[1], x[0])):
    print(f'{mod:>10} -> struct {t:<16}{n}')
print('total', sum(cnt.values()))
if '--fields-tsv' in sys.argv:
    out = sys.argv[sys.argv.index('--fields-tsv') + 1]
    with open(out, 'w') as f:
        for h in field_hits:
            f.write('\t'.join(map(str, h)) + '\n')
