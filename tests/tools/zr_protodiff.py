#!/usr/bin/env python3
"""Compare zring's proto/ with istio/ztunnel's proto/ on the wire facts.

  zr_protodiff.py UPSTREAM_PROTO_DIR [OUR_PROTO_DIR]

For every message and enum zring declares, each field number must exist
upstream with the same type, label and message/enum type name, and each enum
must have the same values. Fields zring leaves out are listed (informational);
field names may differ (only numbers are on the wire). zring.pb.X is checked
against google.protobuf.X. Exit 1 on any wire difference. A maintenance tool for
updating the schema (no network: give it a checkout, e.g. from
`git --git-dir=... archive HEAD proto | tar -x`); run with /usr/bin/python3.
"""
import os
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

OURS = ["pb.proto", "workload.proto", "authorization.proto", "discovery.proto", "ca.proto",
        "zds.proto"]


def descriptors(proto_dir, files):
    with tempfile.NamedTemporaryFile(suffix=".pb") as out:
        subprocess.run(["protoc", "--proto_path=" + proto_dir, "--include_imports",
                        "--descriptor_set_out=" + out.name] + files, check=True)
        fds = descriptor_pb2.FileDescriptorSet()
        fds.ParseFromString(out.read())
    msgs, enums = {}, {}

    def walk(prefix, m):
        name = prefix + m.name
        msgs[name] = {f.number: (f.name, f.type, f.label, f.type_name.rsplit(".", 1)[-1])
                      for f in m.field}
        for e in m.enum_type:
            enums[name + "." + e.name] = {v.number: v.name for v in e.value}
        for n in m.nested_type:
            walk(name + ".", n)

    for f in fds.file:
        for m in f.message_type:
            walk(f.package + ".", m)
        for e in f.enum_type:
            enums[f.package + "." + e.name] = {v.number: v.name for v in e.value}
    return msgs, enums


def upstream_name(name):
    return "google.protobuf." + name[len("zring.pb."):] if name.startswith("zring.pb.") else name


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    up_dir = argv[1]
    ours_dir = argv[2] if len(argv) == 3 else os.path.join(os.path.dirname(__file__), "../../proto")
    up_files = sorted(f for f in os.listdir(up_dir) if f.endswith(".proto"))
    up_files += ["google/protobuf/" + f for f in ("any.proto", "struct.proto", "wrappers.proto",
                                                  "duration.proto", "empty.proto")]
    um, ue = descriptors(up_dir, up_files)
    om, oe = descriptors(ours_dir, OURS)
    bad = 0
    for name, fields in sorted(om.items()):
        up = um.get(upstream_name(name))
        if up is None:
            print(f"{name}: no such message upstream")
            bad += 1
            continue
        for num, (fname, ftype, label, tname) in sorted(fields.items()):
            if num not in up:
                print(f"{name}.{fname} = {num}: no such field upstream")
                bad += 1
            elif (ftype, label, tname) != up[num][1:]:
                print(f"{name}.{fname} = {num}: {(ftype, label, tname)}, upstream {up[num]}")
                bad += 1
            elif fname != up[num][0]:
                print(f"note: {name} field {num} is {fname}, upstream {up[num][0]}")
        left = sorted(set(up) - set(fields))
        if left:
            print(f"note: {name} leaves out " + ", ".join(f"{up[n][0]} = {n}" for n in left))
    for name, values in sorted(oe.items()):
        if ue.get(upstream_name(name)) != values:
            print(f"enum {name}: {values}, upstream {ue.get(upstream_name(name))}")
            bad += 1
    print("wire differences:", bad)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
