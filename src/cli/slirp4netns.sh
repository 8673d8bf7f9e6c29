#!/bin/sh
# slirp4netns (tsnet's drop-in), the command engines run: makes the TAP
# device first, then runs tsnet's Node.js entry (slirp4netns.cjs beside it).
#
# Why a shell first: scripts written for slirp4netns start it in the
# background and configure the TAP at once (slirp4netns has it ~30 ms after
# exec), while a Node.js runtime needs 60-100 ms just to start. This launcher
# (POSIX sh, util-linux's nsenter, iproute2's ip: a few milliseconds) creates
# the device as a persistent TAP inside the target's network namespace, then
# execs the entry with TSNET_TAP_PRECREATED=<name> (and TSNET_TAP_NSENTER, the
# nsenter arguments it used, one per line); tsnet attaches to the device and
# drops its persistence, so it lives exactly as long as tsnet does, or removes
# it the same way it was made if it stops before attaching (src/launcher/tap.ts).
#
# With -c it also configures the device in the same batch (slirp4netns makes
# and configures it in one go; scripts wait for the device, then read its
# address), and TSNET_TAP_CONFIGURED=1 tells tsnet it is done. With
# --api-socket it leaves the device to tsnet, which makes it once the socket
# listens (scripts call the API as soon as the device shows). When the
# command line holds anything it does not know for certain (an unknown or
# abbreviated option, combined short flags, --help, a tapfd target), it
# creates nothing and leaves everything to the Node.js entry. Who to be inside the
# target's user namespace follows src/launcher/target.ts: keep our
# credentials where they map to root there (unshare -r), else become uid/gid
# 0 (podman's keep-id and --uidmap).

set -u
# Every fork and exec costs ~4 ms on a small VM, and this runs on every
# container start: the launcher starts readlink, nsenter (with ip) and node,
# and computes the rest with the shell's builtins.
self=$(readlink -f "$0")
entry=${self%/*}/slirp4netns.cjs
# V8's young generation capped at 1 MiB per semi-space (Node's default grows
# to 16): tsnet allocates little per frame, and the cap keeps ~5 MiB of
# resident memory off a bulk transfer at no measured cost in speed. The old
# generation capped at 1 GiB (Node's default here is ~4 GiB): V8 sizes its
# first full collections from that limit, so the garbage of connection churn
# goes sooner (peak RSS over 6000 connect+request+close 85 -> 72 MiB); tsnet's
# flow and memory budgets keep its heap far below it. One V8 worker thread
# (Node's default is 4): each worker that compiles or collects gets a glibc
# arena of its own, and on the 2-CPU machines tsnet runs on more workers only
# wait for the same cores; peak RSS in one bulk transfer (attach -c, MTU
# 65520, iperf3 3 s, 3 runs) 67.0 -> 64.4 MiB, start-up no slower. The same
# flags are on src/cli/load.cjs's #! line, and must be: the code cache is
# built under them.
node_flags='--max-semi-space-size=1 --max-old-space-size=1024 --v8-pool-size=1'

run_entry() {
	exec node $node_flags "$entry" "$@"
}

# --enable-sandbox: tsnet starts inside its namespace (src/cli/sandbox.sh), in
# the target's user namespace as the TAP is made in it. (When this launcher
# cannot tell, run_entry hands over and tsnet starts itself through it.)
run_sandboxed() {
	if [ -n "$enter_user" ]; then
		sb_userns=$userns_path
		if [ "$creds" = --preserve-credentials ]; then sb_creds=keep; else sb_creds=root; fi
	else
		sb_userns=
		sb_creds=keep
	fi
	exec sh "${entry%/*}/sandbox.sh" "$sb_userns" "$sb_creds" -- node $node_flags "$entry" "$@"
}

netns_type=pid
userns_path=
target=
tap=tap0
configure=0
mtu=1500
cidr=10.0.2.0/24
mac=
api=0
sandbox=0
npos=0
want=
plain=1
ended=0
# The value of an option this launcher uses.
take() {
	case $1 in
	netns-type) netns_type=$2 ;;
	userns-path) userns_path=$2 ;;
	mtu) mtu=$2 ;;
	cidr) cidr=$2 ;;
	macaddress) mac=$2 ;;
	esac
}
for arg in "$@"; do
	if [ -n "$want" ]; then
		take "$want" "$arg"
		want=
		continue
	fi
	if [ "$ended" = 0 ]; then
		case $arg in
		--) ended=1; continue ;;
		--netns-type=* | --userns-path=* | --mtu=* | --cidr=* | --macaddress=*)
			opt=${arg%%=*}
			take "${opt#--}" "${arg#*=}"
			continue ;;
		--netns-type | --userns-path | --mtu | --cidr | --macaddress) want=${arg#--}; continue ;;
		-m) want=mtu; continue ;;
		-m[0-9]*) mtu=${arg#-m}; continue ;;
		--api-socket | --api-socket=* | -a | -a?*) api=1; continue ;;
		--exit-fd | --ready-fd | --target-type | --outbound-addr | --outbound-addr6 | -e | -r)
			want=value; continue ;;
		--exit-fd=* | --ready-fd=* | --target-type=* | --outbound-addr=* | --outbound-addr6=* | -e[0-9]* | -r[0-9]*)
			continue ;;
		--configure | -c) configure=1; continue ;;
		--enable-sandbox | --create-sandbox) sandbox=1; continue ;;
		--disable-host-loopback | --no-host-loopback | --enable-seccomp | --enable-ipv6 | -6 | --disable-dns)
			continue ;;
		-*) plain=0; break ;;
		esac
	fi
	npos=$((npos + 1))
	case $npos in
	1) target=$arg ;;
	2) tap=$arg ;;
	*) plain=0 ;;
	esac
done

if [ "$plain" = 0 ] || [ -n "$want" ] || [ -z "$target" ]; then run_entry "$@"; fi

# The user namespace to enter (when it is not ours) and the network namespace.
case $netns_type in
pid)
	case $target in '' | *[!0-9]*) run_entry "$@" ;; esac
	[ -n "$userns_path" ] || userns_path=/proc/$target/ns/user
	netns=/proc/$target/ns/net
	;;
path) netns=$target ;;
*) run_entry "$@" ;;
esac

enter_user=
creds=--preserve-credentials
# -ef: the same namespace (nsfs device and inode), without readlink.
if [ -n "$userns_path" ] && ! [ "$userns_path" -ef /proc/self/ns/user ]; then
	enter_user=1
	case $userns_path in
	/proc/[0-9]*/ns/user)
		# Who our uid is in there (its uid_map), read with the shell's own read.
		uid=
		while read -r key real _; do
			if [ "$key" = Uid: ]; then uid=$real; break; fi
		done </proc/self/status
		inside=
		if [ -n "$uid" ] && [ -r "${userns_path%/ns/user}/uid_map" ]; then
			while read -r first lower count; do
				if [ "$lower" -le "$uid" ] && [ "$uid" -lt $((lower + count)) ]; then
					inside=$((first + uid - lower))
					break
				fi
			done <"${userns_path%/ns/user}/uid_map"
		fi
		if [ -n "$inside" ] && [ "$inside" != 0 ]; then creds=--setuid=0; fi
		;;
	esac
fi

# The nsenter arguments, one per line, also handed to tsnet for the clean-up.
if [ -n "$enter_user" ]; then
	if [ "$creds" = --preserve-credentials ]; then
		how="--preserve-credentials
--user=$userns_path"
	else
		how="--setuid=0
--setgid=0
--user=$userns_path"
	fi
	how="$how
--net=$netns"
else
	how="--net=$netns"
fi
# With -c the device is also configured now, as slirp4netns does it in one go
# (the same commands as src/launcher/configure.ts, from the same values): a
# script that waits for the device then finds its address. Only canonical
# values are used; anything else is left to tsnet, which reports it.
octets() { # a.b.c.d -> ip_n, a 32-bit number, or failure
	case $1 in *[!0-9.]* | .* | *. | *..*) return 1 ;; esac
	o_ifs=$IFS
	IFS=.
	# shellcheck disable=SC2086 # split on dots (the case above let only digits and dots through)
	set -- $1
	IFS=$o_ifs
	[ $# -eq 4 ] || return 1
	for o in "$@"; do
		case $o in 0?*) return 1 ;; esac
		[ "$o" -le 255 ] || return 1
	done
	ip_n=$((($1 << 24) | ($2 << 16) | ($3 << 8) | $4))
}
dotted() { # a 32-bit number -> dot, a.b.c.d
	dot="$((($1 >> 24) & 255)).$((($1 >> 16) & 255)).$((($1 >> 8) & 255)).$(($1 & 255))"
}
# The batch (src/launcher/configure.ts's creationCommands, line for line): with
# -c the device is made and configured as $tmp, then renamed, brought up and
# routed, so it never shows half-configured under its name.
tmp=tsn$$
batch="tuntap add dev $tap mode tap"
renamed_at=1
configured=0
if [ "$configure" = 1 ]; then
	prefix=${cidr#*/}
	addr=${cidr%/*}
	case $mac in *[A-F]*) mac=$(printf '%s' "$mac" | tr 'A-F' 'a-f') ;; esac
	case $mtu in '' | *[!0-9]* | 0?*) configure=0 ;; *) { [ "$mtu" -ge 68 ] && [ "$mtu" -le 65521 ]; } || configure=0 ;; esac
	case $prefix in '' | *[!0-9]* | 0?*) configure=0 ;; *) { [ "$prefix" -ge 1 ] && [ "$prefix" -le 25 ]; } || configure=0 ;; esac
	case $mac in '' | [0-9a-f][02468ace]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]) ;; *) configure=0 ;; esac
	if [ "$configure" = 1 ] && octets "$addr"; then
		mask=$(((0xffffffff << (32 - prefix)) & 0xffffffff))
		if [ $((ip_n & mask)) -eq "$ip_n" ]; then
			batch="tuntap add dev $tmp mode tap
link set lo up
link set $tmp mtu $mtu"
			renamed_at=3
			if [ -n "$mac" ]; then
				batch="$batch
link set $tmp address $mac"
				renamed_at=4
			fi
			dotted $((ip_n + 100))
			guest=$dot
			dotted $((ip_n + 2))
			batch="$batch
addr add $guest/$prefix dev $tmp
link set $tmp name $tap
link set $tap up
route add default via $dot dev $tap"
			renamed_at=$((renamed_at + 2))
			configured=1
		fi
	fi
fi

# With --api-socket tsnet makes the device itself, once the socket listens
# (scripts that wait for the device call the API at once).
if [ "$api" = 1 ]; then
	if [ "$sandbox" = 1 ]; then run_sandboxed "$@"; fi
	run_entry "$@"
fi

old_ifs=$IFS
IFS='
'
if [ -n "${TSNET_LAUNCHER_PRINT:-}" ]; then printf '%s\n' "$batch"; exit 0; fi # for tests: the batch only
# ip stops at the first failing command and names it ("Command failed -:N").
# shellcheck disable=SC2086 # split on newlines only: each line is one argument
err=$(nsenter $how -- ip -batch - 2>&1 >/dev/null <<EOF
$batch
EOF
)
rc=$?
failed_at=
if [ "$rc" != 0 ]; then
	case $err in
	*"Command failed -:"[0-9]*)
		failed_at=${err##*Command failed -:}
		failed_at=${failed_at%%[!0-9]*}
		;;
	esac
fi
if [ "$rc" = 0 ]; then
	TSNET_TAP_PRECREATED=$tap
	TSNET_TAP_NSENTER=$how
	export TSNET_TAP_PRECREATED TSNET_TAP_NSENTER
	if [ "$configured" = 1 ]; then
		TSNET_TAP_CONFIGURED=1
		export TSNET_TAP_CONFIGURED
	fi
elif [ "$configured" = 1 ] && [ -n "$failed_at" ] && [ "$failed_at" -ge 2 ]; then
	# Undo what was made; tsnet then makes (or finds) the device and reports.
	if [ "$failed_at" -le "$renamed_at" ]; then gone=$tmp; else gone=$tap; fi
	# shellcheck disable=SC2086
	nsenter $how -- ip link del dev "$gone" >/dev/null 2>&1
fi
IFS=$old_ifs
if [ "$sandbox" = 1 ]; then run_sandboxed "$@"; fi
run_entry "$@"
