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
  chromium                                  # the report page's browser self-test (headless, DevTools)
  default-jre-headless                      # Java for the Allure command line
)
# npm for the Allure command line: Debian's, unless one is on PATH already (a NodeSource install, say)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
ALLURE_VERSION="2.46.1"   # npm allure-commandline; `allure generate` renders a run's allure-results

install_allure() {
  command -v allure >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "sevkit: allure missing (run as root, or: npm install -g allure-commandline@$ALLURE_VERSION)" >&2
    exit 2
  fi
  echo "sevkit: installing allure-commandline $ALLURE_VERSION (npm)"
  npm install -g -q "allure-commandline@$ALLURE_VERSION"
}
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  install_allure
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
install_allure
