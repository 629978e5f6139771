# Shared helpers for the root lab tests. Each test sources this, then calls `lab_up FILE SUFFIX`.
# A test builds its own lab under a unique name (t<pid><suffix>), and removes it on every exit
# path through `trap cleanup EXIT`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VPCSIM=${VPCSIM:-$ROOT/target/debug/vpcsim}
LAB=""
STATE=""
WORK=$(mktemp -d /tmp/vpcsim-test.XXXXXX)
# Namespaces a test made itself, outside any lab: removed on exit, after the lab.
OWN_NS=()
# Files a test made itself outside $WORK: removed on exit, after the lab.
OWN_FILES=()
# Directories a test made itself outside $WORK: removed on exit (if empty), after OWN_FILES.
OWN_DIRS=()

cleanup() {
    local rc=$?
    # Servers a test started (pid files in $WORK, background jobs) hold their namespace alive
    # after `ip netns del`: stop them first.
    # A server that exited already must not stop the cleanup (set -e: a failed `kill` would).
    for f in "$WORK"/*.pid; do [ -f "$f" ] && { kill "$(cat "$f")" 2>/dev/null || true; }; done
    # shellcheck disable=SC2046
    kill $(jobs -p) 2>/dev/null || true
    # A server started as `in_ns NS server &` is a child of the subshell `$!` names, so the
    # kills above miss it: stop every process left in the lab's namespaces and the test's own
    # (the daemon lives in the root namespace; `ip netns pids` lists none of it).
    local ns
    for ns in $( { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$LAB-" || true; } ) \
        "${OWN_NS[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    done
    if [ -n "$LAB" ]; then
        if [ $rc -ne 0 ] && [ -f "/run/vpcsim/$LAB.log" ]; then
            echo "--- daemon log of $LAB:"; tail -n 20 "/run/vpcsim/$LAB.log" || true
        fi
        "$VPCSIM" down "$LAB" >/dev/null 2>&1 || true
    fi
    for ns in "${OWN_NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    for f in "${OWN_FILES[@]}"; do rm -f "$f"; done
    for d in "${OWN_DIRS[@]}"; do rmdir "$d" 2>/dev/null || true; done
    rm -rf "$WORK" "$STATE"
    [ -z "$STATE" ] || rm -rf "$STATE".old-*
    exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# lab_up FILE SUFFIX: starts FILE renamed to a unique lab; sets LAB and API. The name starts
# with $VPCSIM_TEST_PREFIX (default "t"), for machines where labs are named by who runs them.
lab_up() {
    LAB="${VPCSIM_TEST_PREFIX:-t}$$$2"
    [ -z "${VPCSIM_TEST_LABS:-}" ] || echo "$LAB" >> "$VPCSIM_TEST_LABS"
    STATE=$(mktemp -d /tmp/vpcsim-state.XXXXXX)
    sed "0,/^name = .*/s//name = \"$LAB\"/" "$1" > "$WORK/$LAB.toml"
    # A port below Linux's ephemeral range (32768-60999), where no client socket of another
    # program takes it; another suite's lab may still hold one: then the next try.
    local try
    for try in 1 2 3 4 5; do
        API="127.0.0.1:$((20000 + ($$ + RANDOM) % 12000))"
        if "$VPCSIM" up "$WORK/$LAB.toml" --detach --api-listen "$API" --state-dir "$STATE" \
            > /dev/null 2> "$WORK/up.err"; then
            return 0
        fi
        grep -q "Address already in use" "$WORK/up.err" || break
    done
    cat "$WORK/up.err" >&2
    fail "lab $LAB did not come up"
}

# in NS CMD...: runs CMD in the lab's namespace NS (the subnet name, aws, or internet).
in_ns() { local ns=$1; shift; ip netns exec "$LAB-$ns" "$@"; }

# get NS URL: prints the response headers of a GET, fails if curl fails.
get_headers() { in_ns "$1" curl -s -m 10 -D - -o /dev/null "$2"; }

# header NAME: the value of a response header read from stdin (empty if absent).
# It reads all its input (no early exit): under `pipefail`, a writer cut off by SIGPIPE would fail
# the pipeline at random.
header() { awk -v k="$1" 'BEGIN { k = tolower(k) } { sub(/\r$/, "") } !done && tolower($0) ~ "^" k ":" { sub(/^[^:]*: */, ""); print; done = 1 }'; }

# status_line TEXT: the first line of TEXT (no pipeline, so no SIGPIPE race).
#
# Under `set -o pipefail`, a reader that stops early (`grep -q`, `head`) can kill its writer with
# SIGPIPE and fail the whole pipeline at random. So the tests never pipe into an early-exiting
# reader: they use here-strings (`grep -q X <<< "$text"`) or `grep >/dev/null -c`, which reads
# everything.
status_line() { printf '%s\n' "${1%%$'\n'*}"; }

# drop_count REASON: a drop counter of the lab from `vpcsim status --json` (0 if it has none such).
drop_count() {
    local n
    n=$({ "$VPCSIM" status "$LAB" --json | grep -A1 "\"$1\"" || true; } | tail -n1 | tr -dc 0-9)
    echo "${n:-0}"
}

# expect_path NS URL SOURCE [VPCE]: asserts what S3 saw: the source address and the endpoint
# (none when VPCE is empty).
expect_path() {
    local h src vpce
    h=$(get_headers "$1" "$2") || fail "$1 -> $2: request failed"
    [[ "$(status_line "$h")" == *" 200"* ]] || fail "$1 -> $2: $(status_line "$h")"
    src=$(header x-vpcsim-source-ip <<< "$h")
    vpce=$(header x-vpcsim-vpce <<< "$h")
    [ "$src" = "$3" ] || fail "$1 -> $2: S3 saw source '$src', expected '$3'"
    [ "$vpce" = "${4:-}" ] || fail "$1 -> $2: endpoint '$vpce', expected '${4:-none}'"
    ok "$1 -> $2: source $src${4:+ through $4}"
}

# expect_unreachable NS URL: the connection must fail.
expect_unreachable() {
    if in_ns "$1" curl -s -m 3 -o /dev/null "$2"; then fail "$1 -> $2 should be unreachable"; fi
    ok "$1 -> $2: unreachable, as the route table says"
}

# The real AWS CLI (from the test virtualenv) against the lab's control API, with the default
# lab's admin keys (AWS's documented example pair).
export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE
export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
AWS_BIN=${AWS_BIN:-$ROOT/.venv/bin/aws}
PY=${PY:-$ROOT/.venv/bin/python}
awsx() { "$AWS_BIN" --endpoint-url "http://$API" --output json "$@"; }

# expect_error CODE aws-args...: the call must fail with that AWS error code.
expect_error() {
    local code=$1 out; shift
    if out=$(awsx "$@" 2>&1); then fail "aws $* succeeded, expected $code"; fi
    grep -q "($code)" <<< "$out" || fail "aws $*: expected ($code), got: $out"
    ok "aws $1 $2 -> $code"
}

# kill_daemon: kill -9 the lab's daemon and wait until it is gone.
kill_daemon() {
    local pid
    pid=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "/run/vpcsim/$LAB.json")
    kill -9 "$pid"
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
    fail "daemon $pid did not die"
}

# s3_put_admin BUCKET KEY FILE: uploads as the lab's admin through the control API (boto3, one
# signed PUT), for objects that anonymous callers may not write.
s3_put_admin() {
    "$PY" - "$API" "$1" "$2" "$3" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://{sys.argv[1]}", region_name="us-east-1")
with open(sys.argv[4], "rb") as f:
    s3.put_object(Bucket=sys.argv[2], Key=sys.argv[3], Body=f)
PY
}
