#!/bin/sh
# udhcpc event script for the DHCP integration test: applies the lease with
# iproute2 and records what it got. udhcpc passes $interface $ip $mask
# $router $dns $mtu in the environment.
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    for r in $router; do ip route add default via "$r" dev "$interface"; done
    echo "lease ip=$ip mask=$mask router=$router dns=$dns mtu=$mtu"
    ;;
esac
exit 0
