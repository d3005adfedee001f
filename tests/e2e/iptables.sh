#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: deploy/iptables/zring-iptables.sh on its own (no zring needed).
#   - install writes the documented rules for IPv4 and IPv6;
#   - install twice leaves one copy of each rule and of each jump;
#   - install with other options replaces the rules (no leftovers);
#   - options come from the environment too;
#   - status exits 0 when installed, 3 when not;
#   - remove restores the namespace's nat table exactly, and remove when
#     nothing is installed succeeds;
#   - bad usage exits 2 and touches nothing.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin iptables
new_netns "$NS_C"
ns_c iptables -w 10 -t nat -S >/dev/null 2>&1 || skip "iptables nat table unusable in a netns"
ns_c ip6tables -w 10 -t nat -S >/dev/null 2>&1 || skip "ip6tables nat table unusable in a netns"

script() { ns_c bash "$IPTABLES_SCRIPT" "$@" 2>>"$E2E_TMP/script.log"; }
# The nat table of one family as rules (-S: no counters, so snapshots compare).
nat_rules() { ns_c "$1" -w 10 -t nat -S; }
snapshot() { { nat_rules iptables; echo ---; nat_rules ip6tables; } }

# count_rules FAMILY PATTERN: rules in the nat table containing PATTERN.
count_rules() { nat_rules "$1" | grep -cF -- "$2" || true; }

pristine="$(snapshot)"

# --- install, twice -----------------------------------------------------------
script install --exclude-outbound-ports 22,53 --exclude-inbound-ports 9000:9010 \
  --exclude-outbound-cidrs 192.0.2.0/24,2001:db8::/32 || fail "install failed"
once="$(snapshot)"
script install --exclude-outbound-ports 22,53 --exclude-inbound-ports 9000:9010 \
  --exclude-outbound-cidrs 192.0.2.0/24,2001:db8::/32 || fail "second install failed"
[ "$(snapshot)" = "$once" ] || fail "second install changed the rules:
$(diff <(echo "$once") <(snapshot))"

for fam in iptables ip6tables; do
  for want in "-A PREROUTING -j ZRING_PREROUTING" "-A OUTPUT -j ZRING_OUTPUT" \
              "--mark 0x539/0xfff" "-o lo" "--dport 22 " "--dport 53 " \
              "--dport 15008 " "--dport 15020 " "--dport 15021 " "--dport 9000:9010 " \
              "REDIRECT --to-ports 15001" "REDIRECT --to-ports 15006"; do
    n="$(nat_rules "$fam" | sed 's/$/ /' | grep -cF -- "$want" || true)"
    [ "$n" -eq 1 ] || fail "$fam: want exactly one rule with '$want', found $n:
$(nat_rules "$fam")"
  done
done
[ "$(count_rules iptables "192.0.2.0/24")" -eq 1 ] || fail "IPv4 CIDR exclusion missing"
[ "$(count_rules iptables "2001:db8::/32")" -eq 0 ] || fail "IPv6 CIDR in iptables"
[ "$(count_rules ip6tables "2001:db8::/32")" -eq 1 ] || fail "IPv6 CIDR exclusion missing"
# Order matters: the exemptions must come before the REDIRECT.
order="$(nat_rules iptables | grep -- '-A ZRING_OUTPUT' | tail -n1)"
[[ "$order" == *"REDIRECT --to-ports 15001"* ]] || fail "REDIRECT is not last in ZRING_OUTPUT"
log "ok: install twice: one copy of each rule"

# A stray duplicate jump (e.g. someone else's) is collapsed back to one.
ns_c iptables -w 10 -t nat -A OUTPUT -j ZRING_OUTPUT
script install || fail "install over a duplicate jump failed"
[ "$(count_rules iptables "-j ZRING_OUTPUT")" -eq 1 ] || fail "duplicate jump survived install"

# --- replacing options, environment ---------------------------------------------
ZRING_IPTABLES_OUTBOUND_PORT=16001 ZRING_IPTABLES_MARK=0x1000/0xf000 script install --inbound-port 16006 ||
  fail "install with env options failed"
for fam in iptables ip6tables; do
  [ "$(count_rules "$fam" "--dport 22 ")" -eq 0 ] || fail "$fam: old exclusion survived a re-install"
  [ "$(count_rules "$fam" "REDIRECT --to-ports 16001")" -eq 1 ] || fail "$fam: env outbound port ignored"
  [ "$(count_rules "$fam" "REDIRECT --to-ports 16006")" -eq 1 ] || fail "$fam: --inbound-port ignored"
  [ "$(count_rules "$fam" "--mark 0x1000/0xf000")" -eq 1 ] || fail "$fam: env mark ignored"
done
log "ok: re-install replaces the rules; environment options honoured"

# --- status ---------------------------------------------------------------------
script status >"$E2E_TMP/status.out" || fail "status failed while installed"
grep -q 'ZRING_OUTPUT' "$E2E_TMP/status.out" || fail "status does not print the rules"

# --- bad usage ------------------------------------------------------------------
before="$(snapshot)"
for args in "" "frobnicate" "install --outbound-port 0" "install --outbound-port 70000" \
            "install --mark nope" "install --exclude-outbound-ports 22,x" \
            "install --exclude-outbound-cidrs 1.2.3" "install --no-such-option 1" \
            "install --ipv6 maybe" "install remove" "install --inbound-port"; do
  rc=0
  # shellcheck disable=SC2086  # word splitting of $args is the point
  script $args >/dev/null || rc=$?
  [ "$rc" -eq 2 ] || fail "'zring-iptables.sh $args' exited $rc, want 2"
done
[ "$(snapshot)" = "$before" ] || fail "a bad invocation changed the rules"
log "ok: bad usage exits 2 and changes nothing"

# --- remove ---------------------------------------------------------------------
script remove || fail "remove failed"
[ "$(snapshot)" = "$pristine" ] || fail "remove did not restore the nat table:
$(diff <(echo "$pristine") <(snapshot))"
script remove || fail "remove when absent failed"
rc=0
script status >/dev/null || rc=$?
[ "$rc" -eq 3 ] || fail "status exited $rc when not installed, want 3"

# --ipv6 off leaves ip6tables alone.
script install --ipv6 off || fail "install --ipv6 off failed"
[ "$(count_rules ip6tables ZRING)" -eq 0 ] || fail "--ipv6 off touched ip6tables"
script remove --ipv6 off || fail "remove --ipv6 off failed"
[ "$(snapshot)" = "$pristine" ] || fail "remove --ipv6 off left rules behind"
log "ok: remove restores the namespace; remove when absent succeeds"

pass "zring-iptables.sh install/remove/status are idempotent and exact"
