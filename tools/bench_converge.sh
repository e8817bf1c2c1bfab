#!/usr/bin/env bash
# Benchmark: how long aistack.fleet.site takes on the lab, cold (fresh hosts) and warm (a
# second run that changes nothing), in total and per host, with the tasks each host ran.
#   tools/bench_converge.sh [BASE]
# With BASE (a git ref), the same is measured first for the collection as it was at BASE,
# on fresh hosts too, so both columns come from one run of the benchmark on one machine.
# The lab is recreated for each cold run; it is left up at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

base="${1:-}"
work="$(mktemp -d)"
cleanup() {
    if [ -n "$base" ] && [ -d "$work/tree" ]; then git worktree remove --force "$work/tree" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# Run the site once from a checkout ($2: its top directory, whose ansible.cfg and lab
# inventory are used, so settings such as pipelining count as part of the version measured)
# with the collection found in $3 (a collections path); print one row.
site_run() {
    local label="$1" tree="$2" collections="$3" log="$work/$1.log" start end
    start=$(date +%s.%N)
    if ! ANSIBLE_CONFIG="$tree/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$collections" ANSIBLE_NOCOLOR=1 \
        ansible-playbook -i "$tree/inventories/lab" "$tree/playbooks/site.yml" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "bench-converge: the $label run failed; its log is above" >&2
        exit 1
    fi
    end=$(date +%s.%N)
    python3 - "$label" "$start" "$end" "$log" <<'PY'
import re, sys
label, start, end, log = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
recap = re.findall(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)\s+skipped=(\d+)", open(log).read(), re.M)
hosts = len(recap)
tasks = [int(ok) + int(failed) + int(skipped) for _, ok, _, failed, skipped in recap]
changed = sum(int(c) for _, _, c, _, _ in recap)
total = end - start
print(f"{label:<16} {total:8.1f} {total / max(hosts, 1):9.1f} {hosts:5d} {sum(tasks) / max(hosts, 1):10.1f} {max(tasks or [0]):9d} {changed:8d}")
with open(log + ".hosts", "w") as out:
    for (host, ok, changed, failed, skipped), count in zip(recap, tasks):
        out.write(f"{label}\t{host}\t{count}\t{changed}\n")
PY
}

fresh_lab() {
    ansible-playbook playbooks/lab/down.yml >/dev/null
    ansible-playbook playbooks/lab/up.yml >/dev/null
}

rows=()
if [ -n "$base" ]; then
    git worktree add --detach "$work/tree" "$base" >/dev/null 2>&1
    mkdir -p "$work/collections/ansible_collections/aistack"
    ln -s "$work/tree" "$work/collections/ansible_collections/aistack/fleet"
    fresh_lab
    rows+=("$(site_run "$base cold" "$work/tree" "$work/collections")")
    rows+=("$(site_run "$base warm" "$work/tree" "$work/collections")")
fi
fresh_lab
rows+=("$(site_run "HEAD cold" "$PWD" "$PWD/.collections")")
rows+=("$(site_run "HEAD warm" "$PWD" "$PWD/.collections")")

printf '\n%-16s %8s %9s %5s %10s %9s %8s\n' run "total s" "s / host" hosts "tasks/host" "max tasks" changed
printf '%s\n' "${rows[@]}"

# Tasks (ok, changed and skipped) and changed tasks of every host, one column per run.
printf '\nper host: tasks run (changed)\n'
cat "$work"/*.log.hosts | python3 <(cat <<'PY'
import sys
runs, hosts, cells = [], [], {}
for line in sys.stdin:
    run, host, tasks, changed = line.rstrip("\n").split("\t")
    runs += [run] if run not in runs else []
    hosts += [host] if host not in hosts else []
    cells[run, host] = f"{tasks} ({changed})"
print("host".ljust(14) + "".join(run.rjust(18) for run in runs))
for host in sorted(hosts):
    print(host.ljust(14) + "".join(cells.get((run, host), "-").rjust(18) for run in runs))
PY
)
