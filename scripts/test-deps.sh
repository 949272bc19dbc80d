#!/usr/bin/env bash
# Installs the Debian packages that ulvs's tests use, when they are missing
# and we are root. Without root it only says what is missing: the tests that
# need those tools skip with a reason (and fail under CI=true).
set -euo pipefail

# command -> Debian package
declare -A need=(
  [ip]=iproute2          # lab tests: ip neigh / ip addr checks
  [nsenter]=util-linux   # lab.Exec and lab.Start run commands in namespaces
  [curl]=curl            # end-to-end tests: client requests through the VIP
  [gcc]=gcc              # go test -race needs cgo for the race runtime
  [nginx]=nginx-light    # end-to-end tests: third-party real servers
  [wrk]=wrk              # end-to-end tests: bounded load runs
  [tshark]=tshark        # end-to-end tests: checksum checks on captures
  [tcpdump]=tcpdump      # end-to-end tests: captures on the director
  [ethtool]=ethtool      # offload checks on lab veths
  [nft]=nftables         # counters on real servers' interfaces
  [socat]=socat          # UDP clients and servers in end-to-end tests
  [keepalived]=keepalived # failover comparisons (issue 7)
  [chromium]=chromium    # the browser test of the web monitor (issue 8)
  [haproxy]=haproxy      # ulvsbench dataplane: HAProxy mode tcp comparison
  [taskset]=util-linux   # ulvsbench dataplane: pins ulvsd and HAProxy
)

missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "test-deps: missing ${missing[*]}; run 'sudo make test' to install them" >&2
  exit 0
fi
echo "test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no, without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
