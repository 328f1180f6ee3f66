# Shared by the multi-node demos (exchange-demo.sh, network-demo.sh): sourced, not run.
# The caller sets DEMO_NAME (for messages), DIR (the demo's directory), NO_APP, NODE_BIN, APP_BIN
# and START_TIMEOUT_S, calls `demo_checks`, and `demo_traps` before starting anything.

log() { echo "$DEMO_NAME: $*" >&2; }
die() {
    echo "$DEMO_NAME: error: $*" >&2
    exit 1
}

# demo_checks MAKE_TARGET DIR_VARIABLE NO_APP_VARIABLE: refuses to wipe a dangerous $DIR, and
# stops early on what is missing to serve the nodes and, unless $NO_APP is 1, open the windows.
demo_checks() {
    local target=$1 dir_var=$2 no_app_var=$3
    case "$DIR" in '' | / | . | .. | "$HOME") die "refusing to wipe $dir_var='$DIR'" ;; esac
    [ -n "${NODE_BIN:-}" ] || die "set NODE_BIN to the carebridge-node binary (make $target does)"
    [ -x "$NODE_BIN" ] || die "$NODE_BIN is not an executable (make build builds it)"
    if [ "$NO_APP" != 1 ]; then
        [ -n "${APP_BIN:-}" ] || die "set APP_BIN to the carebridge-app binary (make $target does)"
        [ -x "$APP_BIN" ] || die "$APP_BIN is not an executable (make build-app builds it)"
        [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] ||
            die "the app windows need a desktop session ($no_app_var=1 serves the nodes alone)"
    fi
    local tool
    for tool in curl jq; do
        command -v "$tool" >/dev/null || die "$tool not found (make deps installs it)"
    done
}

# Everything started in the background (pids appended to `started`), stopped on the way out
# whatever the reason.
started=()
stop_all() {
    local status=$?
    trap - EXIT INT TERM
    if ((${#started[@]})); then
        log "stopping what was started"
        kill -TERM "${started[@]}" 2>/dev/null || true
        wait "${started[@]}" 2>/dev/null || true
    fi
    exit "$status"
}
demo_traps() {
    trap stop_all EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# serve NAME DIR ADDR: serves the node in DIR in the background and waits for the line naming
# the address (logs in $DIR/NAME.log).
serve() {
    local name=$1 dir=$2 addr=$3 out=$DIR/$1.out
    : >"$out"
    "$NODE_BIN" serve --data-dir "$dir" --listen "$addr" >"$out" 2>"$DIR/$name.log" &
    local pid=$!
    started+=("$pid")
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until grep -q '^carebridge-node listening on ' "$out"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 5 "$DIR/$name.log" >&2 || true
            die "the $name node stopped before listening on $addr (is the port taken?)"
        fi
        ((SECONDS < deadline)) || die "the $name node did not listen on $addr within ${START_TIMEOUT_S}s"
        sleep 0.1
    done
    log "$name: $(grep -m1 '^carebridge-node listening on ' "$out")"
}

# call METHOD URL TOKEN [JSON [HEADER...]]: the answer's body; fails, showing it, on an HTTP
# error.
call() {
    local args=(-sS --fail-with-body -X "$1" "$2" -H 'Content-Type: application/json')
    [ -z "$3" ] || args+=(-H "Authorization: Bearer $3")
    [ -z "${4:-}" ] || args+=(--data-binary "$4")
    local header
    for header in "${@:5}"; do args+=(-H "$header"); done
    local body
    body=$(curl "${args[@]}") || die "$1 $2 failed: $body"
    printf '%s' "$body"
}

# sign_in URL USERNAME PASSWORD: a session token.
sign_in() {
    call POST "$1/api/v1/sessions" "" "$(jq -n --arg u "$2" --arg p "$3" '{username: $u, password: $p}')" |
        jq -er .token
}

# staff_file FILE URL USERNAME PASSWORD: the sign-in file `carebridge-app --staff-credentials`
# reads.
staff_file() { jq -n --arg url "$2" --arg u "$3" --arg p "$4" '{url: $url, username: $u, password: $p}' >"$1"; }

# peer DIR_A URL_A DIR_B URL_B: peers two nodes both ways, as their organisations would: each
# one's identity (`keys`), `peer add` on A (which prints the shared API key), then on B with it;
# each accepts the other from 127.0.0.1. The identities are left in $DIR/<name>-identity.json.
peer() {
    local a_dir=$1 a_url=$2 b_dir=$3 b_url=$4
    local a_id=$DIR/$(basename "$a_dir")-identity.json b_id=$DIR/$(basename "$b_dir")-identity.json
    "$NODE_BIN" keys --data-dir "$a_dir" --url "$a_url" >"$a_id"
    "$NODE_BIN" keys --data-dir "$b_dir" --url "$b_url" >"$b_id"
    local api_key
    api_key=$("$NODE_BIN" peer add --data-dir "$a_dir" --identity "$b_id" --allow-source 127.0.0.1)
    "$NODE_BIN" peer add --data-dir "$b_dir" --identity "$a_id" \
        --allow-source 127.0.0.1 --their-api-key "$api_key"
}
