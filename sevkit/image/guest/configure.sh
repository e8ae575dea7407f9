#!/bin/sh
# Runs inside the debootstrap chroot (no /proc, no network). Its text is part of the recipe hash:
# any change here builds a new image. The files it references were copied in by sevkit/image/build.py.
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

echo sevkit-guest > /etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\tsevkit-guest\n::1\tlocalhost ip6-localhost ip6-loopback\n' > /etc/hosts
# the host's resolver must not leak into the image; 10.0.2.3 is QEMU user networking's DNS
echo 'nameserver 10.0.2.3' > /etc/resolv.conf
# the root is found by label, so the same disk boots directly (-kernel) or from a bootloader
printf 'LABEL=sevroot / ext4 defaults,noatime 0 0\n' > /etc/fstab

# networking: systemd-networkd, DHCP on any wired NIC
mkdir -p /etc/systemd/network
cat > /etc/systemd/network/20-wired.network <<'NET'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
systemctl enable systemd-networkd.service

# sshd: keys only, one ed25519 host key handed in per run (no baked host keys)
mkdir -p /etc/ssh/sshd_config.d
cat > /etc/ssh/sshd_config.d/10-sevkit.conf <<'SSH'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
PrintMotd no
SSH
rm -f /etc/ssh/ssh_host_*
systemctl enable ssh.service

# console: a getty on the serial port; root is locked until the credentials unit sets this run's hash
systemctl enable serial-getty@ttyS0.service
usermod -p '!' root
install -m 0755 /tmp/sevkit-guest/sevkit-credentials /usr/local/sbin/sevkit-credentials
install -m 0644 /tmp/sevkit-guest/sevkit-credentials.service /etc/systemd/system/sevkit-credentials.service
systemctl enable sevkit-credentials.service
echo qemu_fw_cfg > /etc/modules-load.d/sevkit.conf

# units that cost CPU under TCG, wait for nothing we need, or would prompt/generate keys on first boot
for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
        e2scrub_reap.service fstrim.timer getty@tty1.service systemd-networkd-wait-online.service \
        sshd-keygen.service systemd-firstboot.service modprobe@drm.service; do
    ln -sf /dev/null "/etc/systemd/system/$unit"
done

# trixie's systemd-ssh-generator wants AF_VSOCK, fails without it and adds sockets nobody uses
mkdir -p /etc/systemd/system-generators
ln -sf /dev/null /etc/systemd/system-generators/systemd-ssh-generator

# modules udev would load for q35's emulated chipset that no test uses; each costs boot time under TCG
printf 'blacklist %s\n' pcspkr iTCO_wdt iTCO_vendor_support kvm_amd kvm_intel kvm cfg80211 joydev \
    > /etc/modprobe.d/sevkit-blacklist.conf

# first-boot caches: build them now, or every boot from the read-only base would rebuild them
ldconfig
journalctl --update-catalog
for unit in ldconfig.service systemd-journal-catalog-update.service; do
    ln -sf /dev/null "/etc/systemd/system/$unit"
done

# initramfs: only what a QEMU guest needs (MODULES=dep would inspect the build host)
sed -i -e 's/^MODULES=.*/MODULES=list/' -e 's/^COMPRESS=.*/COMPRESS=gzip/' /etc/initramfs-tools/initramfs.conf
printf '%s\n' virtio_pci virtio_blk virtio_scsi virtio_net virtio_rng ext4 crc32c_generic qemu_fw_cfg \
    > /etc/initramfs-tools/modules
update-initramfs -u -k all

# trim: docs (keeping copyright notices), man pages, locales, apt lists and caches
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/man/* /usr/share/info/* \
    /usr/share/locale/* /usr/share/lintian/* /var/cache/debconf/*-old /var/log/bootstrap.log
find /usr/share/doc -type f ! -name copyright -delete
find /usr/share/doc -type d -empty -delete
rm -rf /tmp/sevkit-guest
echo "sevkit configure: done"
