#!/usr/bin/env bash
# Run make targets as test stages: every stage runs, each one's duration is printed, and
# the run ends with a table of every stage and every molecule scenario's actions with their
# share of the run, then a line that counts the stages that passed and failed. Exit 1 when
# any failed.
set -uo pipefail
passed=0 failed=0
timings="$(mktemp)"
trap 'rm -f "$timings"' EXIT
# tools/molecule_timed.py appends one row per scenario action here.
export AISTACK_TIMINGS="$timings"
stages=()
for stage in "$@"; do
    printf '\n===== stage %s =====\n' "$stage"
    start=$SECONDS
    if make --no-print-directory "$stage"; then
        result=passed; passed=$((passed + 1))
    else
        result=FAILED; failed=$((failed + 1))
    fi
    stages+=("$stage $result $((SECONDS - start))")
done
total=$SECONDS
printf '\n===== timing =====\n'
{
    for row in "${stages[@]}"; do printf 'stage\t%s\n' "${row// /$'\t'}"; done
    sed 's/^/action\t/' "$timings"
} | awk -F'\t' -v total="$total" '
    function share(s) { return total > 0 ? 100 * s / total : 0 }
    $1 == "stage"  { printf "%-28s %-7s %6ds %5.1f%%\n", $2, $3, $4, share($4) }
    $1 == "action" { printf "  %-26s %-7s %6.0fs %5.1f%%\n", $2 " " $3, "", $4, share($4) }'
printf '%-36s %6ds\n' total "$total"
printf 'stages: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
