#!/usr/bin/env python3
"""Apply the proposed layer map to today's flat tree: which #include lines
would be upward (or same-layer cycles) if files were only moved."""
import os, re, sys, collections

ROOT = sys.argv[1] if len(sys.argv) > 1 else '/work/main'
RANK = {'core': 0, 'net': 1, 'mesh': 2, 'config': 3, 'proxy': 4, 'control': 5, 'main': 6}
LAYER = {}
for m in 'util log addr strbuf ring op bufring pipepool fdbudget memtrim file opts'.split():
    LAYER[m] = 'core'
for m in 'listener conn pump pump_copy pump_splice origdst pod sockopt'.split():
    LAYER[m] = 'net'
for m in 'tls certs tunnel hbone_request pump_hbone'.split():
    LAYER[m] = 'mesh'
for m in ('config config_int config_fields config_json config_model config_policy config_shapes '
          'config_validate config_write config_yaml policy policy_int policy_code route snapshot').split():
    LAYER[m] = 'config'
for m in 'worker authorize hbone nodeagent metrics'.split():
    LAYER[m] = 'proxy'
for m in 'control watch http http_request admin admin_dump metrics_render check'.split():
    LAYER[m] = 'control'
LAYER['main'] = 'main'

files = [os.path.join(ROOT, 'src', f) for f in os.listdir(os.path.join(ROOT, 'src'))] + \
        [os.path.join(ROOT, 'include/zring', f) for f in os.listdir(os.path.join(ROOT, 'include/zring'))]
up = collections.defaultdict(list)
for p in sorted(files):
    mod = os.path.splitext(os.path.basename(p))[0]
    if mod not in LAYER:
        print('unmapped', p); continue
    for m in re.finditer(r'^#include\s+"(?:zring/)?([a-z_]+)\.h"', open(p).read(), re.M):
        h = m.group(1)
        if h not in LAYER:
            print('unmapped header', h); continue
        if RANK[LAYER[h]] > RANK[LAYER[mod]]:
            up[(LAYER[mod], LAYER[h])].append(f'{os.path.relpath(p, ROOT)} -> {h}.h')
n = 0
for k, v in sorted(up.items()):
    print(f'{k[0]} -> {k[1]}: {len(v)}')
    for x in v:
        print('   ', x)
    n += len(v)
print('upward includes:', n)
