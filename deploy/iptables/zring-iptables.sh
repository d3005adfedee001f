#!/usr/bin/env bash
# zring-iptables.sh — install, remove or show zring's traffic capture rules.
#
# The rules live in the nat table of the *current* network namespace (run it
# as `ip netns exec POD zring-iptables.sh install`), for IPv4 and IPv6. Their
# shape follows istio-cni's in-pod rules for ztunnel:
#
#   PREROUTING -> ZRING_PREROUTING   (inbound: connections arriving at the pod)
#     RETURN    tcp dport 15008 (HBONE), 15020 (metrics), 15021 (readiness)
#     RETURN    tcp dport in --exclude-inbound-ports
#     REDIRECT  tcp -> :15006 (--inbound-port)
#
#   OUTPUT -> ZRING_OUTPUT           (outbound: connections the pod opens)
#     RETURN    mark 0x539/0xfff     zring's own upstream sockets (SO_MARK): no loop
#     RETURN    -o lo                traffic that stays inside the pod
#     RETURN    -d CIDR              --exclude-outbound-cidrs
#     RETURN    tcp dport in --exclude-outbound-ports
#     REDIRECT  tcp -> :15001 (--outbound-port)
#
# Both install and remove are idempotent: install rebuilds zring's chains from
# scratch (atomically per family, with iptables-restore --noflush) and keeps
# exactly one jump into each; remove deletes whatever of that is present.
set -euo pipefail

readonly PROG="${0##*/}"
readonly CHAIN_IN=ZRING_PREROUTING
readonly CHAIN_OUT=ZRING_OUTPUT
# Ports zring itself serves that must reach it unredirected (ztunnel's numbers).
readonly FIXED_INBOUND_EXEMPT=(15008 15020 15021)

usage() {
  cat <<EOF
Usage: $PROG install|remove|status [options]

Installs, removes or shows zring's transparent-capture rules (nat table,
chains $CHAIN_IN and $CHAIN_OUT) in the current network namespace, for
both iptables and ip6tables. Run it inside a pod's namespace:
  ip netns exec POD $PROG install

Commands:
  install   create or replace the rules (idempotent)
  remove    delete the rules (idempotent: success when absent)
  status    print the rules with counters; exit 0 if installed, 3 if not

Options (each also read from the environment variable in brackets):
  --outbound-port PORT            outbound capture port, default 15001
                                  [ZRING_IPTABLES_OUTBOUND_PORT]
  --inbound-port PORT             inbound capture port, default 15006
                                  [ZRING_IPTABLES_INBOUND_PORT]
  --mark MARK[/MASK]              packet mark of zring's own upstream sockets,
                                  exempt from capture; default 0x539/0xfff;
                                  without /MASK the whole mark must match
                                  [ZRING_IPTABLES_MARK]
  --exclude-outbound-ports LIST   destination ports never captured outbound,
                                  e.g. 22,53,8000:8100 [ZRING_IPTABLES_EXCLUDE_OUTBOUND_PORTS]
  --exclude-inbound-ports LIST    destination ports never captured inbound
                                  (15008,15020,15021 always are)
                                  [ZRING_IPTABLES_EXCLUDE_INBOUND_PORTS]
  --exclude-outbound-cidrs LIST   destination CIDRs never captured outbound,
                                  IPv4 and IPv6 mixed, e.g. 10.0.0.0/8,fd00::/8
                                  [ZRING_IPTABLES_EXCLUDE_OUTBOUND_CIDRS]
  --ipv6 auto|on|off              auto: skip IPv6 with a warning when ip6tables
                                  is unusable; on: fail then [ZRING_IPTABLES_IPV6]
  -h, --help                      this text

Exit status: 0 success, 1 failure, 2 bad usage, 3 status: not installed.
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "error: $*"; exit 1; }
# Bad usage: say what is wrong and how to get help, exit 2.
usage_error() { say "$*"; say "try '$PROG --help'"; exit 2; }

# ---------------------------------------------------------------- validation

valid_port() { [[ "$1" =~ ^[0-9]{1,5}$ ]] && (( 10#$1 >= 1 && 10#$1 <= 65535 )); }

# A port list is comma separated ports or ranges LOW:HIGH (LOW-HIGH accepted).
# Prints it normalized to one iptables --dport value per line.
parse_port_list() {
  local name="$1" list="$2" item lo hi
  [ -n "$list" ] || return 0
  IFS=',' read -r -a items <<<"$list"
  for item in "${items[@]}"; do
    item="${item//[[:space:]]/}"
    [ -n "$item" ] || continue
    if [[ "$item" =~ ^([0-9]+)[:-]([0-9]+)$ ]]; then
      lo="${BASH_REMATCH[1]}" hi="${BASH_REMATCH[2]}"
      if ! valid_port "$lo" || ! valid_port "$hi" || (( 10#$lo > 10#$hi )); then
        usage_error "$name: bad port range '$item'"
      fi
      echo "$((10#$lo)):$((10#$hi))"
    else
      valid_port "$item" || usage_error "$name: bad port '$item'"
      echo "$((10#$item))"
    fi
  done
}

# CIDRs are split by family; iptables itself checks the finer points.
parse_cidr_list() {
  local list="$1" item
  [ -n "$list" ] || return 0
  IFS=',' read -r -a items <<<"$list"
  for item in "${items[@]}"; do
    item="${item//[[:space:]]/}"
    [ -n "$item" ] || continue
    if [[ "$item" =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}(/[0-9]{1,2})?$ ]]; then
      echo "4 $item"
    elif [[ "$item" == *:* && "$item" =~ ^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$ ]]; then
      echo "6 $item"
    else
      usage_error "--exclude-outbound-cidrs: bad CIDR '$item'"
    fi
  done
}

# MARK[/MASK], each decimal or 0x-hex, 32-bit.
parse_mark() {
  local v="$1" num='(0[xX][0-9A-Fa-f]{1,8}|[0-9]{1,10})'
  [[ "$v" =~ ^${num}(/${num})?$ ]] || usage_error "--mark: bad mark '$v' (want MARK[/MASK])"
  local mark=$((BASH_REMATCH[1])) mask=0xffffffff
  [ -n "${BASH_REMATCH[3]}" ] && mask=$((BASH_REMATCH[3]))
  (( mark <= 0xffffffff && mask <= 0xffffffff && mark != 0 )) ||
    usage_error "--mark: '$v' out of range (nonzero, 32 bits)"
  (( (mark & mask) == mark )) || usage_error "--mark: mark $v has bits outside its mask"
  printf '0x%x/0x%x\n' "$mark" "$mask"
}

# ---------------------------------------------------------------- arguments

cmd=""
outbound_port="${ZRING_IPTABLES_OUTBOUND_PORT:-15001}"
inbound_port="${ZRING_IPTABLES_INBOUND_PORT:-15006}"
mark="${ZRING_IPTABLES_MARK:-0x539/0xfff}"
exclude_out_ports="${ZRING_IPTABLES_EXCLUDE_OUTBOUND_PORTS:-}"
exclude_in_ports="${ZRING_IPTABLES_EXCLUDE_INBOUND_PORTS:-}"
exclude_out_cidrs="${ZRING_IPTABLES_EXCLUDE_OUTBOUND_CIDRS:-}"
ipv6_mode="${ZRING_IPTABLES_IPV6:-auto}"
# Filled by parse_args from the lists above.
out_ports=() in_ports=() out_cidrs=()

parse_args() {
  local opt val
  while [ $# -gt 0 ]; do
    opt="$1"
    case "$opt" in
      -h|--help) usage; exit 0 ;;
      install|remove|status)
        [ -z "$cmd" ] || usage_error "more than one command ('$cmd', '$opt')"
        cmd="$opt"; shift; continue ;;
      --*=*) val="${opt#*=}"; opt="${opt%%=*}"; shift ;;
      --*)
        [ $# -ge 2 ] || usage_error "option $opt needs a value"
        val="$2"; shift 2 ;;
      *) usage_error "unknown argument '$opt'" ;;
    esac
    case "$opt" in
      --outbound-port) outbound_port="$val" ;;
      --inbound-port) inbound_port="$val" ;;
      --mark) mark="$val" ;;
      --exclude-outbound-ports) exclude_out_ports="$val" ;;
      --exclude-inbound-ports) exclude_in_ports="$val" ;;
      --exclude-outbound-cidrs) exclude_out_cidrs="$val" ;;
      --ipv6) ipv6_mode="$val" ;;
      *) usage_error "unknown option '$opt'" ;;
    esac
  done
  [ -n "$cmd" ] || usage_error "missing command: install, remove or status"

  valid_port "$outbound_port" || usage_error "--outbound-port: bad port '$outbound_port'"
  valid_port "$inbound_port" || usage_error "--inbound-port: bad port '$inbound_port'"
  [ "$outbound_port" != "$inbound_port" ] ||
    usage_error "--outbound-port and --inbound-port must differ"
  case "$ipv6_mode" in auto|on|off) ;; *) usage_error "--ipv6: want auto, on or off" ;; esac
  # Parse now so that a bad value stops us before any rule is touched.
  # (An assignment from $(...) carries a usage_error's exit 2 through set -e.)
  local parsed
  mark="$(parse_mark "$mark")"
  parsed="$(parse_port_list --exclude-outbound-ports "$exclude_out_ports")"
  lines_to_array out_ports "$parsed"
  parsed="$(parse_port_list --exclude-inbound-ports "$exclude_in_ports")"
  lines_to_array in_ports "$parsed"
  parsed="$(parse_cidr_list "$exclude_out_cidrs")"
  lines_to_array out_cidrs "$parsed"
}

# lines_to_array NAME TEXT: NAME=(one element per line of TEXT), () when empty.
# shellcheck disable=SC2034  # arr is written through the nameref
lines_to_array() {
  local -n arr="$1"
  arr=()
  [ -z "$2" ] || mapfile -t arr <<<"$2"
}

# ---------------------------------------------------------------- rules

# The families to act on, as iptables binaries ("iptables", maybe "ip6tables").
families() {
  command -v iptables >/dev/null || die "iptables not found"
  iptables -w 10 -t nat -S >/dev/null 2>&1 ||
    die "iptables cannot use the nat table here (root? kernel modules?)"
  echo iptables
  [ "$ipv6_mode" = off ] && return 0
  if command -v ip6tables >/dev/null && ip6tables -w 10 -t nat -S >/dev/null 2>&1; then
    echo ip6tables
  elif [ "$ipv6_mode" = on ]; then
    die "ip6tables cannot use the nat table here (--ipv6 on)"
  else
    say "warning: ip6tables is unusable here; IPv6 traffic will not be captured"
  fi
}

# The iptables-restore input that defines both chains for one family.
# Declaring a chain in --noflush mode creates it or empties it, so applying
# this twice yields the same rules once.
chain_rules() {
  local ipt="$1" family=4 port entry
  [ "$ipt" = ip6tables ] && family=6
  echo "*nat"
  echo ":$CHAIN_IN - [0:0]"
  echo ":$CHAIN_OUT - [0:0]"

  for port in "${FIXED_INBOUND_EXEMPT[@]}"; do
    echo "-A $CHAIN_IN -p tcp --dport $port -m comment --comment \"zring: own port\" -j RETURN"
  done
  for port in "${in_ports[@]}"; do
    echo "-A $CHAIN_IN -p tcp --dport $port -m comment --comment \"zring: excluded inbound port\" -j RETURN"
  done
  echo "-A $CHAIN_IN -p tcp -m comment --comment \"zring: inbound capture\" -j REDIRECT --to-ports $inbound_port"

  # zring marks its upstream sockets; without this rule they would be
  # redirected back into zring forever.
  echo "-A $CHAIN_OUT -m mark --mark $mark -m comment --comment \"zring: own upstream traffic\" -j RETURN"
  echo "-A $CHAIN_OUT -o lo -m comment --comment \"zring: loopback\" -j RETURN"
  for entry in "${out_cidrs[@]}"; do
    [ "${entry%% *}" = "$family" ] || continue
    echo "-A $CHAIN_OUT -d ${entry#* } -m comment --comment \"zring: excluded outbound cidr\" -j RETURN"
  done
  for port in "${out_ports[@]}"; do
    echo "-A $CHAIN_OUT -p tcp --dport $port -m comment --comment \"zring: excluded outbound port\" -j RETURN"
  done
  echo "-A $CHAIN_OUT -p tcp -m comment --comment \"zring: outbound capture\" -j REDIRECT --to-ports $outbound_port"
  echo "COMMIT"
}

chain_exists() { "$1" -w 10 -t nat -S "$2" >/dev/null 2>&1; }

# Rule numbers of the jumps PARENT -> CHAIN, highest first (safe to delete in order).
jump_numbers() {
  local ipt="$1" parent="$2" chain="$3"
  "$ipt" -w 10 -t nat -L "$parent" -n --line-numbers |
    awk -v t="$chain" '$2 == t { print $1 }' | sort -rn
}

delete_jumps() {
  local ipt="$1" parent="$2" chain="$3" n
  for n in $(jump_numbers "$ipt" "$parent" "$chain"); do
    "$ipt" -w 10 -t nat -D "$parent" "$n"
  done
}

# Keep exactly one jump PARENT -> CHAIN (appended, as istio-cni does).
ensure_jump() {
  local ipt="$1" parent="$2" chain="$3" count
  count="$(jump_numbers "$ipt" "$parent" "$chain" | wc -l)"
  [ "$count" -eq 1 ] && return 0
  delete_jumps "$ipt" "$parent" "$chain"
  "$ipt" -w 10 -t nat -A "$parent" -j "$chain"
}

install_family() {
  local ipt="$1"
  # Chains first, jumps second: traffic never enters a half-built chain.
  chain_rules "$ipt" | "$ipt-restore" -w 10 --noflush ||
    die "$ipt-restore rejected zring's rules"
  ensure_jump "$ipt" PREROUTING "$CHAIN_IN"
  ensure_jump "$ipt" OUTPUT "$CHAIN_OUT"
}

remove_family() {
  local ipt="$1" chain
  delete_jumps "$ipt" PREROUTING "$CHAIN_IN"
  delete_jumps "$ipt" OUTPUT "$CHAIN_OUT"
  for chain in "$CHAIN_IN" "$CHAIN_OUT"; do
    if chain_exists "$ipt" "$chain"; then
      "$ipt" -w 10 -t nat -F "$chain"
      "$ipt" -w 10 -t nat -X "$chain"
    fi
  done
}

# Prints the family's rules; returns 0 when fully installed.
status_family() {
  local ipt="$1" ok=0 parent chain
  echo "# $ipt (nat)"
  for parent in PREROUTING OUTPUT; do
    chain="$CHAIN_IN"; [ "$parent" = OUTPUT ] && chain="$CHAIN_OUT"
    if [ -z "$(jump_numbers "$ipt" "$parent" "$chain")" ]; then
      echo "# no jump $parent -> $chain"
      ok=1
    fi
    if chain_exists "$ipt" "$chain"; then
      "$ipt" -w 10 -t nat -L "$chain" -n -v -x --line-numbers
    else
      echo "# chain $chain absent"
      ok=1
    fi
  done
  return "$ok"
}

main() {
  parse_args "$@"
  local fams ipt rc=0
  fams="$(families)"
  fams="${fams//$'\n'/ }"
  for ipt in $fams; do
    case "$cmd" in
      install) install_family "$ipt" ;;
      remove) remove_family "$ipt" ;;
      status) status_family "$ipt" || rc=3 ;;
    esac
  done
  case "$cmd" in
    install) say "installed ($fams): outbound -> :$outbound_port, inbound -> :$inbound_port, mark $mark exempt" ;;
    remove) say "removed ($fams)" ;;
  esac
  return "$rc"
}

main "$@"
