#!/bin/bash
# Regenerates proxy/symbol-order.txt, the linker symbol ordering of the
# shipping build (`cargo proxy-release`, see .cargo/config.toml and
# proxy/link-ordered.sh).
#
# Why: the kernel maps code in 64 KiB fault-around windows, so the idle RSS
# of the proxy grows with the number of 64 KiB windows of .text touched at
# startup. rust-lld lays out the listed functions first, in list order:
# startup/idle code, then the request path, contiguous.
#
# How: runs `wisp-bench compare` with the proxy under callgrind (single
# HTTP/1.1, --taps 1, --mesh, --http2), dumps the functions executed until idle
# (startup + idle) and those executed while serving requests and shutting
# down, and writes their names: every run's startup (default, tapped, meshed,
# HTTP/2, in this order), then every run's request path in the same order,
# leaving out names an earlier section already placed. Startup code of every
# kind of proxy stays dense at the front (a meshed proxy idles on it), and
# the tapped run's request path comes right after the default one, so one
# open tap adds its own code's few windows and not a page in every window of
# the mesh and HTTP/2 code it shares (h2, tonic).
#
#   proxy/order-symbols.sh                  # profile BIN and rewrite the list
#   proxy/order-symbols.sh --check [BIN]    # how many listed names BIN has
#
# Entries are exact symbol names. Their hashes change with dependency
# versions, rustc and cargo metadata (not with ordinary source edits);
# link-ordered.sh then falls back to matching names without hashes, so a stale
# list only helps less and never breaks the build. Regenerate after larger
# changes to the startup or request path, or when --check shows the exact
# coverage dropping.
#
# Needs: valgrind, python3, curl, a built proxy, and the bench + CLI binaries.
#   BIN   proxy binary   (default: target/x86_64-unknown-linux-gnu/release/wisp-proxy)
#   BENCH wisp-bench     (default: target/release/wisp-bench)
#   WISP  wisp CLI       (default: target/release/wisp)
set -euo pipefail

# --- wrapper mode: the bench starts this script as the proxy ------------------
if [[ -n "${WISP_ORDER_WRAP_BIN:-}" ]]; then
  (
    pid=$$
    for _ in $(seq 1 600); do
      curl -sf "http://$LINKERD2_PROXY_ADMIN_LISTEN_ADDR/ready" >/dev/null && break
      sleep 0.1
    done
    sleep 2
    callgrind_control -d idle "$pid"            # dump 1: startup + idle
    while kill -0 "$pid"; do sleep 2; callgrind_control -d req "$pid"; done
  ) </dev/null >/dev/null 2>&1 &
  exec valgrind --tool=callgrind --dump-instr=no --demangle=no \
    --callgrind-out-file="$WISP_ORDER_OUT/cg.%p" "$WISP_ORDER_WRAP_BIN" "$@"
fi

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
BIN=${BIN:-$target/x86_64-unknown-linux-gnu/release/wisp-proxy}
BENCH=${BENCH:-$target/release/wisp-bench}
WISP=${WISP:-$target/release/wisp}
ORDER=$root/proxy/symbol-order.txt

PY=$(cat <<'PYEOF'
import glob, re, subprocess, sys

def stem(s):
    """A symbol name without hashes; keep in sync with link-ordered.sh."""
    if s.startswith('_R'):
        s = re.sub(r'Cs[0-9A-Za-z]+_', 'Cs_', s)
    s = re.sub(r'17h[0-9a-f]{16}E', 'E', s, count=1)
    return re.sub(r'\.(llvm\.)?[0-9]+$', '', s)

def defined(binary):
    return {l.split()[-1] for l in subprocess.run(
        ['nm', '--defined-only', binary], capture_output=True, text=True,
        check=True).stdout.splitlines() if l.strip()}

def executed(path, binary):
    """Functions of `binary` with cost in one callgrind dump, in dump order."""
    names, obs, res, ob = {}, {}, [], None
    for line in open(path):
        m = re.match(r'(c?)(ob|fn)=\((\d+)\)(?: (.*))?$', line.rstrip('\n'))
        if not m:
            continue
        table = obs if m[2] == 'ob' else names
        if m[4]:
            table[m[3]] = m[4]
        if not m[1]:
            if m[2] == 'ob':
                ob = obs.get(m[3])
            elif ob == binary:
                res.append(names[m[3]])
    return res

def part(p):  # cg.PID is the final dump (exit), cg.PID.N the Nth dump
    s = p.rsplit('/', 1)[1].split('.')
    return (s[1], int(s[2]) if len(s) > 2 else 1 << 30)

if sys.argv[1] == 'check':
    binary, order = sys.argv[2:]
    have = defined(binary)
    stems = {stem(n) for n in have}
    want = [l.strip() for l in open(order) if l.strip() and not l.startswith('#')]
    print(f'{binary}: of {len(want)} ordered names {sum(w in have for w in want)} '
          f'present exactly, {sum(stem(w) in stems for w in want)} without hashes')
    sys.exit()

out, binary, order = sys.argv[2:]
symbols = defined(binary)
# Startup + idle (every proxy's first dump) of each run in turn, then the
# request path + shutdown (the later dumps) of each run.
idle, busy = [], []
for d in sorted(glob.glob(out + '/*/')):
    dumps = sorted(glob.glob(d + 'cg.*'), key=part)
    firsts = [p for p in dumps if p.endswith('.1')]
    if not firsts:
        sys.exit(f'order-symbols: no idle dump in {d} (did the proxy get ready?)')
    idle.append(firsts)
    busy.append([p for p in dumps if p not in firsts])
seen, sections = set(), []
for group in idle + busy:
    names = []
    for d in group:
        for n in executed(d, binary):
            if n in symbols and n not in seen:
                seen.add(n)
                names.append(n)
    sections.append(names)
with open(order, 'w') as f:
    f.write('# Generated by proxy/order-symbols.sh: functions the shipping build lays\n'
            '# out first (startup + idle, then the request path); see link-ordered.sh.\n')
    for names in sections:
        for n in names:
            f.write(n + '\n')
k = len(idle)
print(f'order-symbols: startup/idle {[len(s) for s in sections[:k]]} + '
      f'request path {[len(s) for s in sections[k:]]} names -> {order}')
PYEOF
)

if [[ "${1:-}" == "--check" ]]; then
  exec python3 -c "$PY" check "${2:-$BIN}" "$ORDER"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The bench's default single-proxy HTTP/1.1 run first (its startup code goes
# first), then the tapped (control listener, one Observe streaming every
# request), meshed (mTLS, identity) and HTTP/2 runs; slow rates, as callgrind
# runs the proxy ~50x slower.
scenarios=("" "--taps 1" "--mesh" "--http2")
for i in "${!scenarios[@]}"; do
  mkdir "$out/$i"
  # shellcheck disable=SC2086 # a scenario is a list of flags
  WISP_ORDER_WRAP_BIN=$BIN WISP_ORDER_OUT=$out/$i \
    "$BENCH" compare --wisp-bin "$WISP" --proxy-bin "$0" --runs 1 --rates 200 \
    --duration 5s --no-max --ready-timeout 60s --idle-wait 5s ${scenarios[$i]} "$@" >/dev/null
done
python3 -c "$PY" gen "$out" "$BIN" "$ORDER"
