#!/usr/bin/env bash
# Mininet vs simulator: client-server and swarm, N = 2, 4, 8, 16 at
# 20 Mbit/s with 20 MiB; writes docs/data/{mininet,sim}-{cs,swarm}.jsonl
# (sweep-style lines: {"point": {"peers.count": N}, "report": {...}}).
# As root, from the repository root, after `cargo build`.
#
#   PROTOCOLS="cs swarm"  which protocols to run (default: both)
#   REPEATS=1             runs per point on each backend, run k with seed k
#                         (a swarm is a random process: one run is one
#                         sample); with more than one, every run also goes to
#                         docs/data/BACKEND-PROTO-repeats.jsonl (point
#                         {"peers.count": N, "run": k}); the plain files keep
#                         run 1 (seed 1, the scenario's own)
#   PEERLAB=path          the binary (default target/debug/peerlab)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${PEERLAB:-$PWD/target/debug/peerlab}
repeats=${REPEATS:-1}
tmp=$(mktemp -d)
# Kept when a run fails, for its node logs.
trap 'if [ $? = 0 ]; then rm -rf "$tmp"; else echo "kept $tmp" >&2; fi' EXIT
mkdir -p docs/data
line() { # point-json report-file >> out
    /usr/bin/python3 -c 'import json,sys; print(json.dumps({"point": json.loads(sys.argv[1]), "report": json.load(open(sys.argv[2]))}, separators=(",", ":")))' "$1" "$2"
}
for proto in ${PROTOCOLS:-cs swarm}; do
    scen=lab-client-server
    [ "$proto" = swarm ] && scen=swarm-homogeneous
    for be in sim mininet; do : > "docs/data/$be-$proto.jsonl"; done
    if [ "$repeats" -gt 1 ]; then
        for be in sim mininet; do : > "docs/data/$be-$proto-repeats.jsonl"; done
    fi
    for n in 2 4 8 16; do
        for be in sim mininet; do
            for run in $(seq 1 "$repeats"); do
                out="$tmp/$be-$proto-$n-$run.json"
                "$bin" run "$scen" --on "$be" --set peers.count=$n --set 'file.size=20 MiB' \
                    --set seed="$run" --report "$out" --work-dir "$tmp/w-$be-$proto-$n-$run" -q
                [ "$run" = 1 ] && line "{\"peers.count\": $n}" "$out" >> "docs/data/$be-$proto.jsonl"
                if [ "$repeats" -gt 1 ]; then
                    line "{\"peers.count\": $n, \"run\": $run}" "$out" >> "docs/data/$be-$proto-repeats.jsonl"
                fi
            done
        done
    done
done
