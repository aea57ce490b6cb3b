//! `wisp-init`: writes the iptables redirect rules of a meshed pod.

fn main() {}
