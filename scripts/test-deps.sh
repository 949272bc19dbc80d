#!/usr/bin/env bash
# Installs the Debian packages that ulvs's tests use, when they are missing
# and we are root. Without root it only says what is missing: the tests that
# need those tools skip with a reason (and fail under CI=true).
set -euo pipefail

# command -> Debian package
declare -A need=(
  [ip]=iproute2
  [curl]=curl
  [gcc]=gcc
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
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
