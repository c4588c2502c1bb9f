#!/usr/bin/env bash
# Posts a comment on the pull request, or updates the one posted before (found by the marker
# `<!-- rollbook-review -->` on its first line), so a pull request has one rollbook comment.
#
#   post-comment.sh FILE          # needs GH_TOKEN, GITHUB_REPOSITORY and PR_NUMBER; uses `gh`
set -euo pipefail
file=${1:?usage: post-comment.sh FILE}
: "${GITHUB_REPOSITORY:?}" "${PR_NUMBER:?}" "${GH_TOKEN:?}"
marker='<!-- rollbook-review -->'
# GitHub keeps a comment under 65,536 characters: a longer one ends with a note.
if [ "$(wc -c < "$file")" -gt 60000 ]; then
  head -c 60000 "$file" > "$file.cut"
  printf '\n\n… cut: the whole comment is in the job log.\n' >> "$file.cut"
  cat "$file"
  file=$file.cut
fi
id=$(gh api --paginate "repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments" \
  --jq ".[] | select(.body | startswith(\"$marker\")) | .id" | head -n 1)
if [ -n "$id" ]; then
  gh api -X PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$id" -F body=@"$file" >/dev/null
else
  gh api -X POST "repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments" -F body=@"$file" >/dev/null
fi
