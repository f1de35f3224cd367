//! Container endpoint plumbing: veth pair, namespace, addresses, proxy-ARP gateway.
