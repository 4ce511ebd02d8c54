#!/usr/bin/env bash
# Publish this week's MiniTwit release on GitHub: the tag vYYYY.WW (ISO
# year and week) on the commit in production, that commit's `make dist`
# tarball, and notes listing the commits since the last release. A week that
# has its release already gets no second one (and this exits 0).
#
#   deploy/release.sh      (make release; CircleCI's weekly schedule runs it)
#
# Environment:
#   GITHUB_TOKEN       a token allowed to create releases (never printed)
#   GITHUB_REPOSITORY  owner/name (default: CircleCI's project)
#   GITHUB_API         the REST API's address (https://api.github.com)
#   RELEASE_COMMIT     what to release (default: the commit live on the first
#                      of DEPLOY_HOSTS, from ./deploy.sh --revision; with no
#                      DEPLOY_HOSTS, HEAD)
set -euo pipefail
cd "$(dirname "$0")/.."

API=${GITHUB_API:-https://api.github.com}
REPOSITORY=${GITHUB_REPOSITORY:-${CIRCLE_PROJECT_USERNAME:-}/${CIRCLE_PROJECT_REPONAME:-}}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
BODY=$WORK/body.json

die() { echo "release.sh: $*" >&2; exit 1; }

request() {
  # METHOD URL [curl options]: print the HTTP status; the answer goes to
  # $BODY. The token travels on stdin, never on a command line.
  local method=$1 url=$2
  shift 2
  printf 'Authorization: Bearer %s\n' "$GITHUB_TOKEN" |
    curl --silent --show-error --output "$BODY" --write-out '%{http_code}' \
      --request "$method" --header @- \
      --header 'Accept: application/vnd.github+json' \
      --header 'X-GitHub-Api-Version: 2022-11-28' "$@" "$url"
}

field() {
  # A top-level field of the last answer.
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$BODY" "$1"
}

production_commit() {
  if [[ -n ${RELEASE_COMMIT:-} ]]; then
    echo "$RELEASE_COMMIT"
  elif [[ -n ${DEPLOY_HOSTS:-} ]]; then
    ./deploy.sh --revision "${DEPLOY_HOSTS%% *}"
  else
    git rev-parse HEAD
  fi
}

[[ -n ${GITHUB_TOKEN:-} ]] || die "set GITHUB_TOKEN to a token that may create releases"
[[ $REPOSITORY =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] ||
  die "set GITHUB_REPOSITORY to owner/name"
TAG=v$(date -u +%G.%V)
wanted=$(production_commit) || die "cannot tell which commit is in production"
COMMIT=$(git rev-parse --verify --quiet "$wanted^{commit}") ||
  die "the commit to release, $wanted, is not in this clone"

status=$(request GET "$API/repos/$REPOSITORY/releases/tags/$TAG")
case $status in
  200) echo "$TAG is released already: $(field html_url)"; exit 0 ;;
  404) ;;
  *) die "GitHub answered $status to GET releases/tags/$TAG" ;;
esac

# The notes: the commits since the last release (all of them for the first).
status=$(request GET "$API/repos/$REPOSITORY/releases/latest")
range=$COMMIT
if [[ $status == 200 ]]; then
  previous=$(field tag_name)
  # CI's checkout may lack the tag that GitHub made for that release.
  git rev-parse -q --verify "refs/tags/$previous" >/dev/null ||
    git fetch --quiet origin "refs/tags/$previous:refs/tags/$previous" ||
    die "cannot find the last release's tag $previous"
  range=$previous..$COMMIT
elif [[ $status != 404 ]]; then
  die "GitHub answered $status to GET releases/latest"
fi
git log --no-merges --format='- %s (%h)' "$range" >"$WORK/notes.md"

# The tarball, made from the commit itself rather than this checkout.
mkdir "$WORK/source"
git archive "$COMMIT" | tar -x -C "$WORK/source"
make --no-print-directory -C "$WORK/source" dist DIST_DIR="$PWD/dist" \
  DIST_VERSION="$TAG" DIST_REVISION="$COMMIT" >/dev/null
TARBALL=dist/minitwit-$TAG.tar.gz

python3 -c 'import json, sys
print(json.dumps({"tag_name": sys.argv[1], "target_commitish": sys.argv[2],
                  "name": "MiniTwit " + sys.argv[1],
                  "body": open(sys.argv[3]).read()}))' \
  "$TAG" "$COMMIT" "$WORK/notes.md" >"$WORK/release.json"
status=$(request POST "$API/repos/$REPOSITORY/releases" \
  --header 'Content-Type: application/json' --data-binary @"$WORK/release.json")
[[ $status == 201 ]] || die "GitHub answered $status when creating release $TAG"
page=$(field html_url)
upload=$(field upload_url)
status=$(request POST "${upload%%\{*}?name=$(basename "$TARBALL")" \
  --header 'Content-Type: application/gzip' --data-binary @"$TARBALL")
[[ $status == 201 ]] ||
  die "GitHub answered $status to the tarball's upload: $TAG is there without it ($page)"
echo "released $TAG ($COMMIT): $page"
