#!/usr/bin/env bash
# Run make targets as test stages: every stage runs, each one's duration is printed, and
# the last line counts the stages that passed and failed. Exit 1 when any failed.
set -uo pipefail
passed=0 failed=0 summary=()
for stage in "$@"; do
    printf '\n===== stage %s =====\n' "$stage"
    start=$SECONDS
    if make --no-print-directory "$stage"; then
        result=passed; passed=$((passed + 1))
    else
        result=FAILED; failed=$((failed + 1))
    fi
    summary+=("$(printf '%-10s %-7s %5ds' "$stage" "$result" $((SECONDS - start)))")
done
printf '\n===== stages =====\n'
printf '%s\n' "${summary[@]}"
printf '%-18s %5ds\n' total "$SECONDS"
printf 'stages: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
