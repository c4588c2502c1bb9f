#!/usr/bin/env bash
# The pull-request comment of rollbook's review: what a change does to the rollbacks.
#
#   review.sh BASE [HEAD]        # Markdown on stdout; HEAD left out: the working tree
#
# For every plan file under the plans directory that differs between BASE and HEAD: the
# validation result, `rollbook diff` (risks first, then the changes), and each changed
# plan's dry run folded away. Reads ROLLBOOK (the binary, default `rollbook`),
# ROLLBOOK_PLANS (default `plans`) and ROLLBOOK_REVIEW_ARGS (extra arguments for `diff` and
# `plan`, e.g. `--params-file ci/params.yaml`: a plan needs its params to compile). Exits 0
# when the comment was written, whatever it says; 2 when it could not be.
set -euo pipefail

rollbook=${ROLLBOOK:-rollbook}
plans=${ROLLBOOK_PLANS:-plans}
read -r -a extra <<< "${ROLLBOOK_REVIEW_ARGS:-}"
base=${1:?usage: review.sh BASE [HEAD]}
head=${2:-}

# The marker the poster finds the comment by, to update it instead of adding another.
echo "<!-- rollbook-review -->"

mapfile -t changed < <(git diff --name-only --relative --no-renames "$base" ${head:+"$head"} -- "$plans" \
  | grep -E '\.ya?ml$' || true)
if [ "${#changed[@]}" -eq 0 ]; then
  echo "## rollbook"
  echo
  echo "No plan under \`$plans\` changes."
  exit 0
fi

fence() { printf '%s\n' '````text'; cat; printf '%s\n' '````'; }

report=$(mktemp)
trap 'rm -f "$report"' EXIT
if NO_COLOR=1 "$rollbook" validate "$plans" >"$report" 2>&1; then
  valid="all plans valid"
else
  valid="**invalid plans**: see the annotations on the plans' lines"
fi
echo "## rollbook"
echo
echo "Plans changed: ${#changed[@]}; $valid."
echo
if [ "$valid" != "all plans valid" ]; then
  echo "<details><summary>rollbook validate</summary>"
  echo
  fence < "$report"
  echo
  echo "</details>"
  echo
fi
"$rollbook" diff "$base" ${head:+"$head"} "${extra[@]}" --format markdown 2>&1 | sed '1d' || true

for path in "${changed[@]}"; do
  name=$(basename "$path"); name=${name%.*}
  if [ -z "$head" ] && [ ! -e "$path" ]; then continue; fi
  if [ -n "$head" ] && ! git cat-file -e "$head:./$path" 2>/dev/null; then continue; fi
  echo "<details><summary>dry run of <code>$name</code></summary>"
  echo
  if [ -n "$head" ]; then
    dir=$(mktemp -d)
    git show "$head:./$path" > "$dir/$(basename "$path")"
    "$rollbook" plan "$dir/$(basename "$path")" "${extra[@]}" 2>&1 | fence || true
    rm -rf "$dir"
  else
    "$rollbook" plan "$path" "${extra[@]}" 2>&1 | fence || true
  fi
  echo
  echo "</details>"
done
