#!/usr/bin/env bash
# Installs the Debian packages the test suite needs beyond Node, when they are missing.
# Run by `npm test` (root `pretest`). Idempotent: when everything is installed it only runs
# one `dpkg-query` and exits, so it adds well under a second to a test run.
#
# Add a package here when a test starts to use a real tool from it, with a comment saying
# which tests need it. Later work adds, among others:
#   grub-common      grub-editenv: the A/B boot environment of SimDevice
#   xorriso          building installer ISOs
#   libvirt-clients  virsh with libvirt's test driver (Virtualized Edge)
#   chromium         browser tests of the console
set -euo pipefail

PACKAGES=(
  chromium        # browser tests of the web console (test/e2e/console*.test.ts, via playwright-core)
  xorriso         # NoCloud seed ISOs: installer seed-iso, agent --seed (test/e2e/registration*.test.ts); the installer ISO of image build --installer (test/lab/installer.test.ts)
  grub-common     # grub-editenv: the A/B boot environment (agent device/boot-env, os manager tests)
  docker-registry # a real OCI registry for OS image pulls (test/support/registry.ts)
  skopeo          # pushes test OS images from an OCI layout into that registry
  libvirt-daemon-system # libvirtd + virtlogd: real QEMU domains at qemu:///system (test/e2e/virtualized-qemu.test.ts; started by test/support/global-setup.ts)
  qemu-utils      # qemu-img: libvirt creates qcow2 volumes with it
  dnsmasq-base    # DHCP on the libvirt network the VMs of test/e2e/virtualized-boot.test.ts boot on (a recommendation of libvirt-daemon)
  libvirt-clients # virsh: the virt manager's libvirt sessions; the test driver (test:///default) runs in-process (test/e2e/virtualized-*.test.ts)
  umoci           # builds small OCI image layouts for those pushes (cluster-profile digest pinning tests)
  prometheus      # promtool check metrics: the server's /metrics exposition (packages/server/src/http/metrics.test.ts)
  e2fsprogs       # mkfs.ext4 -d / debugfs: LinuxDevice slots as ext4 images (device/linux-slots.test.ts)
  squashfs-tools  # mksquashfs/unsquashfs: the squashfs slots of Edgeplane OS 2 (device/linux-slots.test.ts, test/lab)
  xdelta3         # makes the binary patches of delta OS updates (oci/delta/patch.ts; delta.test.ts, test/e2e/delta-*.test.ts)
  swtpm           # a software TPM 2.0 per simulated device: TPM-bound identity (test/support/swtpm.ts; agent identity/tpm-key.test.ts, test/e2e/tpm-identity.test.ts)
  swtpm-tools     # swtpm_setup: manufactures that TPM's state, EK and EK certificate
  tpm2-tools      # tpm2_*: what the agent drives the TPM with (a real device has it in Edgeplane OS)
  bubblewrap      # bwrap: a simulated host's remote shells and commands run in a sandbox whose / is the device's root (device/sim/sim-sandbox.test.ts, test/e2e/remote-session*.test.ts)
  haproxy         # the load balancer in front of server replicas: health checks on /readyz, WebSocket channels (test/support/haproxy.ts, test/e2e/replicas*.test.ts)
  # The image builder (packages/image, `edgeplane image build`) and the real-device lab (test/lab):
  mmdebstrap        # the Debian root filesystem of Edgeplane OS 2 (test/e2e/image-build-os2.test.ts, test/lab)
  busybox-static    # init, shell and DHCP client of Edgeplane OS; the initramfs
  cpio              # packs the initramfs
  zstd              # compresses OS 2 layers (tar+zstd) and unpacks them (agent oci/extract.test.ts, test/e2e/image-build-os2.test.ts, test/lab)
  dosfstools        # mkfs.vfat: the EFI system partition
  mtools            # mcopy/mmd: files into the ESP image without mounting it
  fdisk             # sfdisk: the GPT of the installer disk
  grub-efi-amd64-bin # GRUB's x86_64-efi modules for grub-mkimage (the unsigned boot loader, --boot-loader grub)
  shim-signed       # the Secure Boot chain of the installer disk: shim signed by Microsoft's UEFI CA, and MokManager (packages/image/src/secure-boot.test.ts, test/lab)
  grub-efi-amd64-signed # GRUB signed by Debian, which shim loads (the default boot loader of the installer disk)
  sbsigntool        # sbverify/sbattach: who signed an EFI image; the lab's kernel with its signature removed (test/lab/installer.test.ts)
  ovmf              # UEFI firmware for QEMU (test/lab)
  qemu-system-x86   # boots the installer disk (test/lab)
  chrony            # chronyd: the lab's NTP server on the host side of the VM's network (test/lab/ntp.ts)
  tesseract-ocr     # reads the pairing code off the VM's graphical screen dump (test/lab/screen.ts)
)

if ((${#PACKAGES[@]} == 0)); then
  exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "test-deps: not a Debian-based system; make sure these are installed: ${PACKAGES[*]}" >&2
  exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  # `dpkg -s` succeeds for packages that were removed but left config files; check the status field.
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "installed" ]]; then
    missing+=("$pkg")
  fi
done

# The busybox image's kernel comes from `apt-get download linux-image-*` (packages/image/src/kernel.ts)
# unless the image cache already holds one: that needs the package lists, which a machine image may
# ship without.
need_lists=0
if ! ls "${EDGEPLANE_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeplane/image}"/linux-image-[0-9]*.deb >/dev/null 2>&1 &&
  ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
  need_lists=1
fi

if ((${#missing[@]} == 0 && need_lists == 0)); then
  exit 0
fi

if ((${#missing[@]} > 0)); then echo "test-deps: installing missing Debian packages: ${missing[*]}"; else echo "test-deps: fetching the package lists (apt-get update) for the kernel package"; fi
SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "test-deps: not root and no sudo; install these yourself: ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
if ((${#missing[@]} > 0)); then
  "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
