#!/usr/bin/env bash
# capture.sh sends a pod's outbound traffic through its Envoy sidecar, the way
# Istio's istio-init does. Run it in the pod's network namespace before the
# application starts: as an init container with NET_ADMIN and NET_RAW (see
# deploy/sidecar/deployment.yaml), or by hand with `nsenter -n -t PID`.
#
#   outbound TCP          -> nat OUTPUT REDIRECT to Envoy's 15001 ("virtualOutbound",
#                            use_original_dst), except Envoy's own uid, loopback,
#                            EXCLUDE_CIDRS and EXCLUDE_PORTS
#   UDP to SERVICE_CIDRS  -> marked and routed locally (ip rule fwmark -> table with
#                            "local default dev lo") to the Envoy listener bound
#                            (transparent) to the ClusterIP:port itself ("udp_<IP>_<P>")
#   UDP port 53           -> 127.0.0.1:DNS_PORT, Envoy's "dns" listener (DNS_CAPTURE)
#
# Settings (environment):
#   ENVOY_UID      uid Envoy runs as; its traffic is never captured (default 1337;
#                  "" exempts no uid, for an Envoy that runs as root, see ENVOY_GID)
#   ENVOY_GID      also exempt traffic of this gid (default: none)
#   OUTBOUND_PORT  Envoy's virtualOutbound port (default 15001)
#   SERVICE_CIDRS  comma list of the cluster's Service CIDRs, IPv4 and/or IPv6, whose
#                  UDP goes to Envoy's transparent listeners (default 10.96.0.0/12, kubeadm's and kind's default;
#                  "" captures no UDP but DNS)
#   EXCLUDE_CIDRS  comma list of destinations never captured (default: none)
#   EXCLUDE_PORTS  comma list of TCP destination ports never captured (default: none)
#   DNS_CAPTURE    "true" sends UDP 53 to 127.0.0.1:DNS_PORT (default true); TCP 53
#                  goes through 15001 like any TCP (Envoy passes it through)
#   DNS_PORT       port of Envoy's DNS listener (default 15053, switchboard serve
#                  --envoy-dns-address 127.0.0.1:15053)
#   ENABLE_IPV6    "true" also writes the ip6tables rules (default false), IPv6
#                  DNS queries to [::1]:DNS_PORT, Envoy's "dns6" listener
#                  (switchboard serve --envoy-dns-address
#                  127.0.0.1:15053,[::1]:15053)
#   TPROXY_MARK    fwmark of UDP packets to Services (default 0x539, i.e. 1337)
#   TPROXY_TABLE   routing table that delivers marked packets locally (default 133)
#
# Rerunning it replaces its own rules (its chains are flushed, jumps and the ip
# rule are not added twice); it never touches rules it did not write.
set -euo pipefail

ENVOY_UID="${ENVOY_UID-1337}"
ENVOY_GID="${ENVOY_GID:-}"
OUTBOUND_PORT="${OUTBOUND_PORT:-15001}"
SERVICE_CIDRS="${SERVICE_CIDRS-10.96.0.0/12}"
EXCLUDE_CIDRS="${EXCLUDE_CIDRS:-}"
EXCLUDE_PORTS="${EXCLUDE_PORTS:-}"
DNS_CAPTURE="${DNS_CAPTURE:-true}"
DNS_PORT="${DNS_PORT:-15053}"
ENABLE_IPV6="${ENABLE_IPV6:-false}"
TPROXY_MARK="${TPROXY_MARK:-0x539}"
TPROXY_TABLE="${TPROXY_TABLE:-133}"

log() { echo "capture.sh: $*" >&2; }

# split LIST prints the comma list's items one per line, blanks dropped.
split() { tr ',' '\n' <<<"$1" | sed 's/[[:space:]]//g; /^$/d'; }

# of_family FAMILY LIST prints LIST's CIDRs of FAMILY (4 or 6).
of_family() {
	local cidr
	while read -r cidr; do
		if [[ "$cidr" == *:* ]]; then [[ "$1" == 6 ]] && echo "$cidr"; else [[ "$1" == 4 ]] && echo "$cidr"; fi
	done < <(split "$2")
	return 0
}

# chain IPT TABLE NAME makes NAME empty, creating it if needed.
chain() { "$1" -t "$2" -N "$3" 2>/dev/null || "$1" -t "$2" -F "$3"; }

# jump IPT TABLE BUILTIN NAME appends "-j NAME" to BUILTIN unless it is there.
jump() { "$1" -t "$2" -C "$3" -j "$4" 2>/dev/null || "$1" -t "$2" -A "$3" -j "$4"; }

# capture FAMILY writes the rules of one address family (4 or 6).
capture() {
	local family="$1" ipt=iptables loopback=127.0.0.0/8 cidr port
	if [[ "$family" == 6 ]]; then ipt=ip6tables loopback=::1/128; fi
	local services
	services="$(of_family "$family" "$SERVICE_CIDRS")"

	# --- TCP (and DNS): nat OUTPUT. The nat table sees the first packet of a
	# connection (or UDP flow); conntrack rewrites the rest and the replies.
	chain "$ipt" nat SWITCHBOARD_OUTPUT
	# Envoy's own connections (to endpoints, to Switchboard, its DNS
	# forwarding) go out as they are; capturing them would loop.
	if [[ -n "$ENVOY_UID" ]]; then
		"$ipt" -t nat -A SWITCHBOARD_OUTPUT -m owner --uid-owner "$ENVOY_UID" -j RETURN
	fi
	if [[ -n "$ENVOY_GID" ]]; then
		"$ipt" -t nat -A SWITCHBOARD_OUTPUT -m owner --gid-owner "$ENVOY_GID" -j RETURN
	fi
	# DNS before the loopback exemption: a query to any resolver goes to
	# Envoy's DNS listener, which answers Service names from its table and
	# forwards the rest. DNAT in OUTPUT reroutes the packet to lo.
	if [[ "$DNS_CAPTURE" == true && "$family" == 4 ]]; then
		"$ipt" -t nat -A SWITCHBOARD_OUTPUT -p udp --dport 53 -j DNAT --to-destination "127.0.0.1:$DNS_PORT"
	elif [[ "$DNS_CAPTURE" == true ]]; then
		"$ipt" -t nat -A SWITCHBOARD_OUTPUT -p udp --dport 53 -j DNAT --to-destination "[::1]:$DNS_PORT"
	fi
	# Traffic that stays in the pod (loopback, the pod's own addresses, which
	# route via lo) is not outbound.
	"$ipt" -t nat -A SWITCHBOARD_OUTPUT -o lo -j RETURN
	"$ipt" -t nat -A SWITCHBOARD_OUTPUT -d "$loopback" -j RETURN
	while read -r cidr; do
		"$ipt" -t nat -A SWITCHBOARD_OUTPUT -d "$cidr" -j RETURN
	done < <(of_family "$family" "$EXCLUDE_CIDRS")
	while read -r port; do
		"$ipt" -t nat -A SWITCHBOARD_OUTPUT -p tcp --dport "$port" -j RETURN
	done < <(split "$EXCLUDE_PORTS")
	# Everything else TCP goes to virtualOutbound, which reads the original
	# destination (SO_ORIGINAL_DST) and hands the connection to the
	# 0.0.0.0_<port> listener (or passes it through).
	"$ipt" -t nat -A SWITCHBOARD_OUTPUT -p tcp -j REDIRECT --to-ports "$OUTBOUND_PORT"
	jump "$ipt" nat OUTPUT SWITCHBOARD_OUTPUT

	# --- UDP to Services: policy routing, as TPROXY setups do. NAT cannot
	# do it: Envoy's UDP listeners are bound to each ClusterIP:port, and a
	# UDP socket has no SO_ORIGINAL_DST. So the packet keeps its destination
	# and is delivered locally to the transparent socket bound to it.
	chain "$ipt" mangle SWITCHBOARD_UDP
	if [[ -n "$services" ]]; then
		if [[ -n "$ENVOY_UID" ]]; then
			"$ipt" -t mangle -A SWITCHBOARD_UDP -p udp -m owner --uid-owner "$ENVOY_UID" -j RETURN
		fi
		if [[ -n "$ENVOY_GID" ]]; then
			"$ipt" -t mangle -A SWITCHBOARD_UDP -p udp -m owner --gid-owner "$ENVOY_GID" -j RETURN
		fi
		# DNS to a ClusterIP (kube-dns) is marked too, but the nat table's
		# DNAT above runs after this and sends it to 127.0.0.1 all the same.
		# Mark UDP to a Service address. The mark makes the kernel route
		# the packet again, now by the ip rule below: table TPROXY_TABLE,
		# whose only route says every address is local, via lo.
		while read -r cidr; do
			"$ipt" -t mangle -A SWITCHBOARD_UDP -p udp -d "$cidr" -j MARK --set-mark "$TPROXY_MARK"
		done <<<"$services"
		# Back in through lo, the marked packet is delivered by the
		# ordinary UDP lookup to the socket bound to its own destination,
		# ClusterIP:port, which may be bound there because it is
		# transparent (IP_TRANSPARENT; Envoy's "transparent: true").
		# No TPROXY target: with --on-port 0 and no --on-ip, TPROXY
		# looks for a socket on the *incoming interface's* address, lo's
		# 127.0.0.1, and drops the packet when there is none, so a socket
		# bound to ClusterIP:port never sees it (TestCapture failed so
		# while this script had that rule).
		# With no such socket (no listener yet) the kernel answers ICMP
		# port unreachable, as for any closed local port.
	fi
	jump "$ipt" mangle OUTPUT SWITCHBOARD_UDP

	# The routing side: marked packets look up TPROXY_TABLE,
	# where every address is local and reached through lo.
	while ip "-$family" rule del fwmark "$TPROXY_MARK" lookup "$TPROXY_TABLE" 2>/dev/null; do :; done
	if [[ -n "$services" ]]; then
		ip "-$family" rule add fwmark "$TPROXY_MARK" lookup "$TPROXY_TABLE"
		ip "-$family" route replace local default dev lo table "$TPROXY_TABLE"
	fi
	[[ -n "$ENVOY_UID$ENVOY_GID" ]] || log "warning: neither ENVOY_UID nor ENVOY_GID is set: Envoy's own traffic will loop"
	log "IPv$family: TCP -> :$OUTBOUND_PORT (uid '$ENVOY_UID' gid '$ENVOY_GID' exempt); UDP to local transparent sockets for [${services//$'\n'/,}]"
}

capture 4
if [[ "$ENABLE_IPV6" == true ]]; then
	capture 6
fi
