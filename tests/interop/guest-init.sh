#!/bin/busybox sh
# shellcheck shell=dash
# /init of the vhostkit interop guest (busybox initramfs built by guest.py).
# Reads its job from the kernel command line:
#   vhk.ip=ADDR vhk.peer=ADDR   guest address and the address to ping
#   vhk.sizes=56,1400           ICMP payload sizes, one ping round each
#   vhk.count=N                 echo requests per round (default 5)
#   vhk.mtu=N                   eth0 MTU (default: driver's)
#   vhk.cpus=0,1                run each round once pinned to every listed CPU
#                               (multiqueue: virtio-net maps CPU n to queue n)
#   vhk.reboot=1                reboot instead of powering off at the end
#   vhk.rng=N                   instead of the network test: read N bytes from
#                               /dev/hwrng (virtio-rng) and print them in hex
#   vhk.mig=1                   instead of ping rounds: ping forever, one echo
#                               request at a time (size: the first of vhk.sizes,
#                               on each CPU of vhk.cpus in turn), one line each:
#                               VHK-MIG pong|lost seq=N cpu=C (live migration);
#                               meanwhile one more ping per CPU sends its next
#                               request as soon as the reply is in (ping -A), so
#                               traffic is in flight whenever the guest stops
# Prints marker lines on the serial console for the test runner:
#   VHK-BOOT n=N, VHK-NET ..., VHK-PING size=S cpu=C sent=N received=M, VHK-DONE
#   VHK-RNG-DEV current=NAME features=BITS, VHK-RNG bytes=N hex=HEX (rng mode)
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

ip=10.0.0.2; peer=10.0.0.1; sizes=56; count=5; mtu=""; cpus=""; reboot=0; rng=""; mig=0
read -r cmdline </proc/cmdline
for arg in $cmdline; do
    case "$arg" in
    vhk.ip=*) ip=${arg#vhk.ip=} ;;
    vhk.peer=*) peer=${arg#vhk.peer=} ;;
    vhk.sizes=*) sizes=$(echo "${arg#vhk.sizes=}" | tr , ' ') ;;
    vhk.count=*) count=${arg#vhk.count=} ;;
    vhk.mtu=*) mtu=${arg#vhk.mtu=} ;;
    vhk.cpus=*) cpus=$(echo "${arg#vhk.cpus=}" | tr , ' ') ;;
    vhk.reboot=*) reboot=${arg#vhk.reboot=} ;;
    vhk.rng=*) rng=${arg#vhk.rng=} ;;
    vhk.mig=*) mig=${arg#vhk.mig=} ;;
    esac
done

# One VHK-BOOT per boot (the runner counts them across a reboot).
echo "VHK-BOOT uptime=$(cut -d' ' -f1 /proc/uptime)"

finish() {
    echo "VHK-DONE"
    sync
    if [ "$reboot" = 1 ]; then reboot -f; else poweroff -f; fi
    sleep 60
}

while read -r mod; do
    insmod "/lib/modules/$mod" || echo "VHK-ERROR insmod $mod"
done </lib/modules/load-order

if [ -n "$rng" ]; then
    hw=/sys/class/misc/hw_random
    n=0
    while ! grep -q virtio_rng "$hw/rng_current" 2>/dev/null && [ $n -lt 50 ]; do
        sleep 0.1; n=$((n + 1))
    done
    # features: the negotiated virtio feature bits of the rng device, bit 0 first
    feat=$(cat /sys/bus/virtio/drivers/virtio_rng/virtio*/features 2>/dev/null)
    echo "VHK-RNG-DEV current=$(cat "$hw/rng_current" 2>/dev/null) features=$feat"
    # One read of N bytes; the hwrng core takes it from the device in chunks.
    hex=$(dd if=/dev/hwrng bs="$rng" count=1 2>/dev/null | hexdump -v -e '1/1 "%02x"')
    echo "VHK-RNG bytes=$((${#hex} / 2)) hex=$hex"
    finish
fi

n=0
while [ ! -d /sys/class/net/eth0 ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
if [ ! -d /sys/class/net/eth0 ]; then
    echo "VHK-ERROR no eth0"
    finish
fi
ifconfig lo 127.0.0.1 up
[ -n "$mtu" ] && ifconfig eth0 mtu "$mtu"
ifconfig eth0 "$ip" netmask 255.255.255.0 up
rxq=$(find /sys/class/net/eth0/queues/ -name "rx-*" | wc -l)
txq=$(find /sys/class/net/eth0/queues/ -name "tx-*" | wc -l)
# features: the negotiated virtio feature bits, bit 0 first
echo "VHK-NET mac=$(cat /sys/class/net/eth0/address) mtu=$(cat /sys/class/net/eth0/mtu) rxq=$rxq txq=$txq features=$(cat /sys/class/net/eth0/device/features)"

[ -n "$cpus" ] || cpus=any
if [ "$mig" = 1 ]; then
    # Until QEMU is stopped: the sequence goes on across migrations.
    size=${sizes%% *}; seq=0
    for cpu in $cpus; do
        if [ "$cpu" = any ]; then run=""; else run="taskset -c $cpu"; fi
        $run ping -A -q -s "$size" "$peer" >/dev/null 2>&1 &
    done
    while true; do
        for cpu in $cpus; do
            seq=$((seq + 1))
            if [ "$cpu" = any ]; then run=""; else run="taskset -c $cpu"; fi
            if $run ping -c 1 -W 1 -s "$size" "$peer" >/dev/null 2>&1; then
                echo "VHK-MIG pong seq=$seq cpu=$cpu"
            else
                echo "VHK-MIG lost seq=$seq cpu=$cpu"
            fi
        done
    done
fi
for cpu in $cpus; do
    for size in $sizes; do
        if [ "$cpu" = any ]; then run=""; else run="taskset -c $cpu"; fi
        $run ping -c "$count" -W 2 -s "$size" "$peer" 2>&1 | tee /tmp/ping.out | sed 's/^/guest: /'
        sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' /tmp/ping.out)
        recv=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' /tmp/ping.out)
        echo "VHK-PING size=$size cpu=$cpu sent=${sent:-0} received=${recv:-0}"
    done
done
finish
