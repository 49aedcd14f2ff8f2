#!/bin/sh
# PID 1 of the VM test guest: mount the basics, load drivers, mount the project
# read-only over 9p and hand over to the virtio-serial agent. If the agent exits,
# PID 1 exits, the kernel panics and qemu (-no-reboot, panic=-1) quits.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts
mount -t tmpfs tmp /tmp && mount -t tmpfs run /run
depmod -a
for m in virtio_pci virtio_net virtio_console 9pnet_virtio 9p crc32c_generic ip_vs; do modprobe "$m"; done
mkdir -p /project
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose project /project
ip link set lo up
hostname esv-vm
echo "esv-guest: init done" > /dev/ttyS0
cd /project
export PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=/project
exec python3 /project/tests/vm/agent.py
