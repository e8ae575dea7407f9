#!/usr/bin/env bash
# Install the Debian packages sevkit needs, only those missing. Idempotent and quick when all are there.
# Used by `make conformance` and `make test`; runs as root on Debian/Ubuntu.
set -euo pipefail
PKGS=(
  python3 python3-venv python3-pip          # the suite's environment
  qemu-system-x86 qemu-utils ovmf           # guests
  debootstrap e2fsprogs                     # guest image build (no loop mounts)
  openssh-server openssh-client             # the self-tests' private sshd; ssh-keygen
  iproute2                                  # fleet self-tests and demo: network namespaces
  kmod msr-tools cpuid                      # modprobe cpuid/msr, rdmsr, cpuid for manual triage
  ca-certificates xz-utils zstd cpio
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "sevkit: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
  exit 2
fi
echo "sevkit: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
