#!/usr/bin/env bash
# `make run-exchange`: a hospital and an insurer on this machine, peered the way two
# organisations peer their nodes, each with a staff app window signed in.
#
#   1. wipes $EXCHANGE_DIR (default target/exchange);
#   2. prepares the demo hospital st-marys.example (carebridge-node demo --prepare-only) and
#      initialises the insurer assure.example (admin / admin-demo-pass);
#   3. peers them: `keys` on each, `peer add` on the hospital (it prints the shared API key),
#      `peer add --their-api-key` on the insurer; each accepts the other from 127.0.0.1;
#   4. serves the hospital on 127.0.0.1:8080 and the insurer on 127.0.0.1:8081 (logs in
#      $EXCHANGE_DIR/*.log);
#   5. through the nodes' APIs: creates the insurer's reviewer (reviewer / reviewer-demo-pass)
#      and records, as the first demo doctor, the first demo patient's consent to share with
#      the insurer;
#   6. writes the sign-in files hospital-staff.json (the doctor), insurer-staff.json (the
#      reviewer) and insurer-admin.json, and opens a staff app window with each of the first
#      two; waits until a window closes or Ctrl-C, then stops everything it started.
#
# Environment: NODE_BIN (carebridge-node, required), APP_BIN (carebridge-app, required unless
# EXCHANGE_NO_APP=1), EXCHANGE_DIR, EXCHANGE_NO_APP=1 (no windows: print the sign-ins and serve
# until Ctrl-C), START_TIMEOUT_S=60. Relative paths are from the repository's root.
set -euo pipefail

cd "$(dirname "$0")/.."
DIR=${EXCHANGE_DIR:-target/exchange}
NO_APP=${EXCHANGE_NO_APP:-0}
START_TIMEOUT_S=${START_TIMEOUT_S:-60}
HOSPITAL=st-marys.example
INSURER=assure.example
HOSPITAL_LISTEN=127.0.0.1:8080
INSURER_LISTEN=127.0.0.1:8081
HOSPITAL_URL=http://$HOSPITAL_LISTEN
INSURER_URL=http://$INSURER_LISTEN
INSURER_ADMIN_PASSWORD=admin-demo-pass
REVIEWER=reviewer
REVIEWER_PASSWORD=reviewer-demo-pass

# shellcheck source=lib/demo.sh
. scripts/lib/demo.sh
DEMO_NAME=exchange-demo

demo_checks run-exchange EXCHANGE_DIR EXCHANGE_NO_APP
demo_traps

log "wiping $DIR"
rm -rf -- "$DIR"
mkdir -p -- "$DIR"

log "preparing the demo hospital $HOSPITAL in $DIR/hospital"
"$NODE_BIN" demo --prepare-only --data-dir "$DIR/hospital" --listen "$HOSPITAL_LISTEN" >&2
echo 'organisation = "St Mary'"'"'s Hospital"' >>"$DIR/hospital/node.toml"

log "initialising the insurer $INSURER in $DIR/insurer"
CAREBRIDGE_ADMIN_PASSWORD=$INSURER_ADMIN_PASSWORD "$NODE_BIN" init --data-dir "$DIR/insurer" \
    --name "$INSURER" --kind insurer --time-zone Europe/Amsterdam >/dev/null
echo 'organisation = "Assure Health Insurance"' >>"$DIR/insurer/node.toml"

log "peering: each node's identity (keys), then peer add on both sides"
peer "$DIR/hospital" "$HOSPITAL_URL" "$DIR/insurer" "$INSURER_URL"

serve hospital "$DIR/hospital" "$HOSPITAL_LISTEN"
serve insurer "$DIR/insurer" "$INSURER_LISTEN"

log "creating the insurer's reviewer $REVIEWER"
admin_token=$(sign_in "$INSURER_URL" admin "$INSURER_ADMIN_PASSWORD")
call POST "$INSURER_URL/api/v1/practitioners" "$admin_token" "$(jq -n \
    --arg u "$REVIEWER" --arg p "$REVIEWER_PASSWORD" \
    '{username: $u, display_name: "Rita Reviewer", role: "reviewer", password: $p}')" >/dev/null

creds=$DIR/hospital/demo-credentials.json
doctor=$(jq -r '.doctors[0].username' "$creds")
doctor_password=$(jq -r '.doctors[0].password' "$creds")
doctor_name=$(jq -r '.doctors[0].display_name' "$creds")
patient_id=$(jq -r '.patients[0].id' "$creds")
patient_name=$(jq -r '.patients[0].name' "$creds")
log "recording $patient_name's consent to share with $INSURER, as $doctor_name"
doctor_token=$(sign_in "$HOSPITAL_URL" "$doctor" "$doctor_password")
call POST "$HOSPITAL_URL/api/v1/patients/$patient_id/consents" "$doctor_token" \
    "$(jq -n --arg peer "$INSURER" '{peer: $peer}')" >/dev/null

staff_file "$DIR/hospital-staff.json" "$HOSPITAL_URL" "$doctor" "$doctor_password"
staff_file "$DIR/insurer-staff.json" "$INSURER_URL" "$REVIEWER" "$REVIEWER_PASSWORD"
staff_file "$DIR/insurer-admin.json" "$INSURER_URL" admin "$INSURER_ADMIN_PASSWORD"

cat >&2 <<EOF

St Mary's Hospital  $HOSPITAL_URL  doctor $doctor / $doctor_password ($doctor_name)
                    every demo sign-in: $creds
Assure (insurer)    $INSURER_URL  reviewer $REVIEWER / $REVIEWER_PASSWORD, admin admin / $INSURER_ADMIN_PASSWORD
Consent recorded:   $patient_name may have reports sent to $INSURER.
Sign-in files:      $DIR/hospital-staff.json, $DIR/insurer-staff.json, $DIR/insurer-admin.json

EOF

if [ "$NO_APP" = 1 ]; then
    log "serving both nodes until Ctrl-C"
    wait -n "${started[@]}" || true
    die "a node stopped (see $DIR/hospital.log and $DIR/insurer.log)"
fi

# Without an OS keychain the profiles' keys come from this passphrase (a throw-away demo).
export CAREBRIDGE_PASSPHRASE="${CAREBRIDGE_PASSPHRASE:-carebridge-demo}"
"$APP_BIN" --staff-credentials "$DIR/hospital-staff.json" --half left &
started+=("$!")
"$APP_BIN" --staff-credentials "$DIR/insurer-staff.json" --half right &
started+=("$!")
log "two app windows: the hospital's doctor and the insurer's reviewer; close one or press Ctrl-C to stop"
wait -n "${started[@]}" || true
