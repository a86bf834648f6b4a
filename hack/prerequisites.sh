#!/usr/bin/env bash
# Installs the Debian packages lbstack's tests and demo use, or says
# exactly which are missing. Shared by `make test`, `make demo` and .ci/run.
#
#   hack/prerequisites.sh            install what is missing when root; otherwise
#                                    list it and go on (the tests that need it skip
#                                    loudly, and fail under CI=true)
#   hack/prerequisites.sh --require  the same, but exit 1 when something is missing
#                                    and cannot be installed (make demo)
set -euo pipefail

require=false
[ "${1:-}" = "--require" ] && require=true

# package:command-it-provides (a file path for packages without a command)
packages=(
  make:make git:git gcc:gcc curl:curl procps:sysctl
  iproute2:ip arping:arping iputils-ping:ping ndisc6:ndisc6 tcpdump:tcpdump
  bird2:bird util-linux:nsenter
  # real kubelet nodes: container runtime, pod network, kube-proxy's tools
  containerd:containerd runc:runc containernetworking-plugins:/usr/lib/cni/bridge
  iptables:iptables conntrack:conntrack
)

missing=()
for entry in "${packages[@]}"; do
  pkg=${entry%%:*} what=${entry#*:}
  if [[ $what == /* ]]; then [ -e "$what" ] && continue; else command -v "$what" >/dev/null 2>&1 && continue; fi
  missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    exit 0
  fi
  echo "Installing ${missing[*]} failed"
  if $require; then exit 1; fi
  echo "  tests that need them will be skipped (and fail under CI=true)"
  exit 0
fi

echo "Missing Debian packages: ${missing[*]}"
echo "  install them as root: apt-get install ${missing[*]}"
if $require; then exit 1; fi
echo "  tests that need them will be skipped (and fail under CI=true)"
