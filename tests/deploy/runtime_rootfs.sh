#!/usr/bin/env bash
# The container image's runtime stage, reproduced without Docker, running the
# sidecar example the way a kubelet would.
#
# Builds (once, cached) a Debian 12 minbase file system with debootstrap and
# the Dockerfile's runtime packages, copies zring and zring-iptables.sh to
# the Dockerfile's destinations, and then, in a fresh network namespace with
# that file system mounted read-only:
#   1. runs the sidecar example's init container command with only the
#      capabilities its manifest adds (and /run on a tmpfs, its emptyDir);
#   2. runs zring with only its manifest's capabilities, its ZRING_CONFIG and
#      ZRING_CERTS, the example ConfigMap's JSON and a certificate directory
#      laid out as the kubelet lays out the projected Secret volume
#      (timestamped directory, ..data symlink, symlinks through it);
#   3. updates both volumes the kubelet's way (new directory, ..data swapped
#      with one rename): a rotated certificate and a changed config must be
#      reloaded, then a truncated config must be rejected;
#   4. sends SIGTERM: zring must drain and exit 0; the rules are removed.
#
# Needs root, debootstrap and Debian's package mirror (the first run takes a
# minute or two). Not part of CI: `meson test -C build --suite slow`.
# Exit 77 (skip) without root or debootstrap, or for a sanitizer build of zring.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="${ZRING_SRCDIR:-$(cd "$here/../.." && pwd)}"
ZRING_BIN="${ZRING_BIN:-$SRC/build/zring}"
CACHE="${ZRING_CACHE:-$SRC/.cache}"
PY="${ZRING_PYTHON:-/usr/bin/python3}"
MIRROR="${ZRING_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

say() { printf '[rootfs] %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
skip() { say "skip: $*"; exit 77; }

[ "$(id -u)" -eq 0 ] || skip "needs root (namespaces, chroot, iptables)"
command -v debootstrap >/dev/null || skip "needs debootstrap (apt-get install debootstrap)"
readelf -d "$ZRING_BIN" | grep -q 'libasan\|libubsan' && skip "$ZRING_BIN is a sanitizer build"

# Facts from the Dockerfile and the sidecar manifest, one shell assignment each.
eval "$("$PY" - "$SRC" <<'PY'
import json, shlex, sys
sys.path.insert(0, sys.argv[1] + "/tests/deploy")
import yaml
from image_unit import apt_installs, parse_dockerfile
stages, info, problems = parse_dockerfile()
docs = list(yaml.safe_load_all(open(sys.argv[1] + "/deploy/k8s/sidecar/example.yaml")))
cm = next(d for d in docs if d["kind"] == "ConfigMap")
pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
init = next(c for c in pod["initContainers"] if c["name"] == "zring-iptables")
zr = next(c for c in pod["initContainers"] if c["name"] == "zring")
env = {e["name"]: e.get("value") for e in zr["env"]}
caps = lambda c: ",".join("+" + x.lower() for x in c["securityContext"]["capabilities"]["add"])
certs = next(v for v in pod["volumes"] if v["name"] == "zring-certs")["projected"]["sources"]
out = {
    "PKGS": " ".join(sorted(apt_installs(stages[-1]))),
    "ZRING_DEST": info["entrypoint"],
    "SCRIPT_DEST": info["script"],
    "INIT_CMD": " ".join(init["command"] + init.get("args", [])),
    "INIT_CAPS": caps(init),
    "ZRING_CAPS": caps(zr),
    "CFG": env["ZRING_CONFIG"],
    "CERTS": env["ZRING_CERTS"],
    "CFG_JSON": cm["data"][env["ZRING_CONFIG"].rsplit("/", 1)[1]],
    "CERT_ITEMS": " ".join(f"{s['secret']['name']}:{i['key']}:{i['path']}"
                           for s in certs for i in s["secret"]["items"]),
}
for k, v in out.items():
    print(f"{k}={shlex.quote(v)}")
PY
)"

# ------------------------------------------------------------ the file system

root="$CACHE/rootfs-bookworm-runtime"
want="bookworm minbase + $PKGS"
if [ "$(cat "$root.stamp" 2>/dev/null)" != "$want" ]; then
  say "building $root: debootstrap bookworm minbase + $PKGS"
  rm -rf "$root" "$root.tmp" "$root.stamp"
  mkdir -p "$CACHE"
  debootstrap --variant=minbase bookworm "$root.tmp" "$MIRROR" >"$CACHE/rootfs.log" 2>&1 ||
    fail "debootstrap failed (see $CACHE/rootfs.log)"
  cp /etc/resolv.conf "$root.tmp/etc/resolv.conf"
  # shellcheck disable=SC2086  # PKGS is a list
  chroot "$root.tmp" bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends $PKGS && rm -rf /var/lib/apt/lists/*" \
      >>"$CACHE/rootfs.log" 2>&1 || fail "apt-get install $PKGS failed (see $CACHE/rootfs.log)"
  mv "$root.tmp" "$root"
  echo "$want" >"$root.stamp"
fi
# The image's two COPY lines.
install -m 0755 "$ZRING_BIN" "$root$ZRING_DEST"
install -m 0755 "$SRC/deploy/iptables/zring-iptables.sh" "$root$SCRIPT_DEST"

# ------------------------------------------------------------ the volumes

work="$(mktemp -d)"
ns="zrfs$$"
cleanup() {
  local pid
  pid="$(cat "$work/zring.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

bash "$SRC/scripts/certs.sh" ca "$work/ca" >/dev/null 2>&1
declare -A issued=()
for item in $CERT_ITEMS; do   # secret:key:path
  path="${item#*:*:}" id="${item#*:*:}"
  id="${id%/*}"
  if [[ "$id" =~ ^([^/]+)/ns/([^/]+)/sa/([^/]+)$ ]] && [ -z "${issued[$id]:-}" ]; then
    bash "$SRC/scripts/certs.sh" workload "$work/ca" --trust-domain "${BASH_REMATCH[1]}" \
      --ns "${BASH_REMATCH[2]}" --sa "${BASH_REMATCH[3]}" >/dev/null 2>&1
    issued[$id]=1
  fi
done

# Write a new version of a kubelet volume: files into a fresh timestamped
# directory, then ..data swapped to it with one rename, the old one removed.
# kubelet_volume DIR VERSION SRC:DEST...
kubelet_volume() {
  local dir="$1" ts="..2026_01_01_00_00_00.$2" spec src dest old
  shift 2
  mkdir -p "$dir/$ts"
  for spec in "$@"; do
    src="${spec%%:*}" dest="${spec#*:}"
    mkdir -p "$(dirname "$dir/$ts/$dest")"
    cp "$src" "$dir/$ts/$dest"
    chmod 0400 "$dir/$ts/$dest"
    # The visible name: a symlink through ..data to the top-level entry.
    [ -L "$dir/${dest%%/*}" ] || ln -s "..data/${dest%%/*}" "$dir/${dest%%/*}"
  done
  old="$(readlink "$dir/..data" 2>/dev/null || true)"
  ln -s "$ts" "$dir/..data_tmp"
  mv -T "$dir/..data_tmp" "$dir/..data"
  [ -z "$old" ] || rm -rf "${dir:?}/$old"
}

cert_specs() {
  local item key path
  for item in $CERT_ITEMS; do
    key="${item#*:}" key="${key%%:*}" path="${item#*:*:}"
    case "$key" in
      root-cert.pem) echo "$work/ca/root-cert.pem:$path" ;;
      tls.crt) echo "$work/ca/${path%/*}/cert-chain.pem:$path" ;;
      tls.key) echo "$work/ca/${path%/*}/key.pem:$path" ;;
      *) fail "unexpected Secret key $key" ;;
    esac
  done
}

mkdir -p "$work/config" "$work/certs"
printf '%s' "$CFG_JSON" >"$work/cfg1.json"
kubelet_volume "$work/config" 1 "$work/cfg1.json:${CFG##*/}"
mapfile -t specs < <(cert_specs)
kubelet_volume "$work/certs" 1 "${specs[@]}"

# ------------------------------------------------------------ the pod

ip netns add "$ns"
ip -n "$ns" link set lo up
log="$work/zring.log"

wait_log() {  # wait_log SECONDS PATTERN
  local i
  for ((i = 0; i < $1 * 10; i++)); do grep -qE "$2" "$log" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
show_fail() { [ -f "$log" ] && sed 's/^/  | /' "$log" >&2; fail "$*"; }
ok() { say "ok: $*"; }

# The pod, in the background: a private mount namespace in the new network
# namespace, the rootfs read-only, the two volumes read-only at the
# manifest's paths (bind mounts of $work/config and $work/certs, so updates
# made below show through), /run a tmpfs. It runs the init container, then
# zring until it exits, then removes the rules. Results go to $work/*.rc.
# shellcheck disable=SC2016  # expanded by the inner shell
ip netns exec "$ns" unshare -m --propagation private env \
    R="$root" W="$work" CFG="$CFG" CERTS="$CERTS" LOG="$log" INIT_CMD="$INIT_CMD" \
    INIT_CAPS="$INIT_CAPS" ZRING_CAPS="$ZRING_CAPS" ZRING_DEST="$ZRING_DEST" \
    SCRIPT_DEST="$SCRIPT_DEST" bash -c '
  set -u
  mount --bind "$R" "$R"
  mkdir -p "$R${CFG%/*}" "$R$CERTS"
  mount --bind "$W/config" "$R${CFG%/*}" && mount -o remount,bind,ro "$R${CFG%/*}"
  mount --bind "$W/certs" "$R$CERTS" && mount -o remount,bind,ro "$R$CERTS"
  mount -t proc proc "$R/proc"
  mount -t tmpfs tmpfs "$R/run"
  mount -o remount,bind,ro "$R"
  as() { local caps="$1"; shift; chroot "$R" setpriv --bounding-set "-all,$caps" --inh-caps -all -- "$@"; }
  as "$INIT_CAPS" $INIT_CMD; echo $? >"$W/init.rc"
  as "$INIT_CAPS" "$SCRIPT_DEST" status >/dev/null; echo $? >"$W/status.rc"
  # Not through as(): $! must be zring itself (chroot, setpriv, env exec).
  chroot "$R" setpriv --bounding-set "-all,$ZRING_CAPS" --inh-caps -all -- \
    env ZRING_CONFIG="$CFG" ZRING_CERTS="$CERTS" ZRING_WORKERS=2 ZRING_DRAIN_TIMEOUT=5s \
    "$ZRING_DEST" >"$LOG" 2>&1 &
  echo $! >"$W/zring.pid"
  wait $!; echo $? >"$W/zring.rc"
  as "$INIT_CAPS" "$SCRIPT_DEST" remove; echo $? >"$W/remove.rc"
  as "$INIT_CAPS" "$SCRIPT_DEST" status >/dev/null; echo $? >"$W/status-after.rc"
' &
pod=$!

for ((i = 0; i < 100; i++)); do [ -f "$work/zring.pid" ] && break; sleep 0.1; done
[ "$(cat "$work/init.rc" 2>/dev/null)" = 0 ] || fail "init container: $INIT_CMD failed"
[ "$(cat "$work/status.rc")" = 0 ] || fail "the rules are not in place after the init container"
ok "init container installed the rules with $INIT_CAPS on a read-only root"

wait_log 10 'msg=ready' || show_fail "zring never became ready"
grep -qE 'msg="certificates loaded" .*refused=0' "$log" || show_fail "certificates not loaded"
grep -qE 'msg="config loaded" .*version=1 ' "$log" || show_fail "config not loaded"
ok "zring ready with $ZRING_CAPS: config version 1, certificates from the projected layout"

# A rotated certificate and a changed config, each one kubelet-style update.
[ "${#issued[@]}" -gt 0 ] || fail "the sidecar's certificate volume holds no identity"
for d in "${!issued[@]}"; do
  [[ "$d" =~ ^([^/]+)/ns/([^/]+)/sa/([^/]+)$ ]] || fail "identity path $d"
  bash "$SRC/scripts/certs.sh" rotate "$work/ca" --trust-domain "${BASH_REMATCH[1]}" \
    --ns "${BASH_REMATCH[2]}" --sa "${BASH_REMATCH[3]}" >/dev/null 2>&1
done
mapfile -t specs < <(cert_specs)
kubelet_volume "$work/certs" 2 "${specs[@]}"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); s=d["services"][-1]; s["vips"]=s["vips"]+["/10.96.255.254"]; json.dump(d,open(sys.argv[2],"w"))' \
  "$work/cfg1.json" "$work/cfg2.json"
kubelet_volume "$work/config" 2 "$work/cfg2.json:${CFG##*/}"
wait_log 10 'msg="certificates reloaded" .*refused=0' || show_fail "rotated certificates not reloaded"
wait_log 10 'msg="config loaded" .*version=2 ' || show_fail "changed config not reloaded"
ok "..data swaps reloaded both: certificates reloaded, config version 2"

printf '{"workloads": [' >"$work/cfg3.json"
kubelet_volume "$work/config" 3 "$work/cfg3.json:${CFG##*/}"
wait_log 10 'msg="config reload rejected"' || show_fail "a truncated config was not rejected"
ok "a truncated config was rejected: $(grep -oE 'kept_version=[0-9]+' "$log" | tail -1)"

kill -TERM "$(cat "$work/zring.pid")"
wait "$pod" || true
[ "$(cat "$work/zring.rc" 2>/dev/null)" = 0 ] || show_fail "zring exited $(cat "$work/zring.rc" 2>/dev/null) after SIGTERM"
grep -q 'msg=draining' "$log" || show_fail "no drain on SIGTERM"
if [ "$(cat "$work/remove.rc")" != 0 ] || [ "$(cat "$work/status-after.rc")" != 3 ]; then
  fail "the rules were not removed"
fi
ok "SIGTERM: drained, exit 0; rules removed"
echo "5 passed, 0 failed"
