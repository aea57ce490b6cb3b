#!/bin/sh
# Linker of the shipping build (`cargo proxy-release`, .cargo/config.toml):
# runs rustc's usual linker (cc with rust-lld) with a symbol ordering file, so
# that the functions listed in proxy/symbol-order.txt (startup + idle code,
# then the request path) are laid out first and contiguous in .text.
#
# symbol-order.txt holds exact symbol names, but hashes in them (the
# `17h...E` of legacy mangling, v0 crate disambiguators, LTO's `.NNN`
# suffixes) change with dependency versions, rustc and cargo metadata. A name
# the objects being linked do not define is therefore matched without its
# hash: replaced by every function of the same name, i.e. all instances of a
# generic function (less dense, still far better than no order). Names that
# match nothing drop out: a stale list only helps less, it never breaks the
# build. proxy/order-symbols.sh regenerates the list (and --check tells how
# much of it still matches exactly).
set -eu
list=$(dirname "$0")/symbol-order.txt
out=
prev=
for a in "$@"; do
  [ "$prev" = "-o" ] && out=$a
  prev=$a
done
[ -n "$out" ] || exec "${WISP_LINK_CC:-cc}" "$@"
order=$out.symbol-order

# Objects rustc passes (with fat LTO: one object holding every Rust function).
objs=
for a in "$@"; do
  case $a in *.o) objs="$objs $a" ;; esac
done
# shellcheck disable=SC2086 # a list of paths
nm --defined-only $objs 2>/dev/null | awk '$2 ~ /^[tTwW]$/ { print $3 }' |
  awk -v list="$list" '
  function stem(s) {
    if (s ~ /^_R/) gsub(/Cs[0-9A-Za-z]+_/, "Cs_", s)
    sub(/17h[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]E/, "E", s)
    sub(/\.(llvm\.)?[0-9]+$/, "", s)
    return s
  }
  { exact[$0] = 1; k = stem($0); n[k]++; names[k, n[k]] = $0 }
  END {
    while ((getline line < list) > 0) {
      if (line ~ /^#/ || line == "") continue
      if (line in exact || !((k = stem(line)) in n)) { out(line); continue }
      for (i = 1; i <= n[k]; i++) out(names[k, i])
    }
  }
  function out(s) { if (!(s in done)) { done[s] = 1; print s } }' >"$order"

exec "${WISP_LINK_CC:-cc}" "$@" -Wl,--symbol-ordering-file="$order" \
  -Wl,--no-warn-symbol-ordering
