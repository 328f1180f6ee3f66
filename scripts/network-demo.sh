#!/usr/bin/env bash
# `make run-network`: two hospitals and an insurer on this machine, peered, for consented access
# across hospitals (README, "Records at other hospitals"):
#
#   1. wipes $NETWORK_DIR (default target/network);
#   2. prepares the demo hospital st-marys.example (carebridge-node demo --prepare-only), whose
#      patients' e-mail goes to a mail sink of the demo's own (aiosmtpd on 127.0.0.1:2525,
#      every message printed to $NETWORK_DIR/mail.log); initialises the second hospital
#      general.example (admin / admin-demo-pass) and the insurer assure.example (the same);
#   3. peers St Mary's with General (the access messages both ways) and with the insurer;
#   4. serves St Mary's on 127.0.0.1:8080, the insurer on 8081, General on 8082;
#   5. through the nodes' APIs: gives St Mary's first demo patient an e-mail address and a
#      signed report; registers the same person at General, where they have just arrived, and
#      creates General's doctor (dr.mensah / doctor-demo-pass);
#   6. opens three windows: St Mary's front desk (left), General's doctor (right) and St Mary's
#      kiosk; waits until one closes or Ctrl-C, then stops everything it started.
#
# Environment: NODE_BIN (carebridge-node, required), APP_BIN (carebridge-app, required unless
# NETWORK_NO_APP=1), AIOSMTPD_PYTHON (a Python with aiosmtpd: `make aiosmtpd` installs one),
# NETWORK_DIR, NETWORK_NO_APP=1 (no windows: print the sign-ins and serve until Ctrl-C),
# START_TIMEOUT_S=60. Relative paths are from the repository's root.
set -euo pipefail

cd "$(dirname "$0")/.."
DIR=${NETWORK_DIR:-target/network}
NO_APP=${NETWORK_NO_APP:-0}
START_TIMEOUT_S=${START_TIMEOUT_S:-60}
HOME_HOSPITAL=st-marys.example
SECOND_HOSPITAL=general.example
INSURER=assure.example
HOME_URL=http://127.0.0.1:8080
INSURER_URL=http://127.0.0.1:8081
SECOND_URL=http://127.0.0.1:8082
SMTP_ADDR=127.0.0.1:2525
ADMIN_PASSWORD=admin-demo-pass
SECOND_DOCTOR=dr.mensah
SECOND_DOCTOR_PASSWORD=doctor-demo-pass
PATIENT_EMAIL=patient@mail.example

# shellcheck source=lib/demo.sh
. scripts/lib/demo.sh
DEMO_NAME=network-demo

demo_checks run-network NETWORK_DIR NETWORK_NO_APP
[ -x "${AIOSMTPD_PYTHON:-}" ] || die "set AIOSMTPD_PYTHON to a Python with aiosmtpd (make aiosmtpd installs one)"
demo_traps

log "wiping $DIR"
rm -rf -- "$DIR"
mkdir -p -- "$DIR"

log "the mail sink on $SMTP_ADDR: every message in $DIR/mail.log"
"$AIOSMTPD_PYTHON" -u -m aiosmtpd -n -l "$SMTP_ADDR" -c aiosmtpd.handlers.Debugging \
    >"$DIR/mail.log" 2>"$DIR/mail.err" &
started+=("$!")

log "preparing the demo hospital $HOME_HOSPITAL in $DIR/st-marys"
"$NODE_BIN" demo --prepare-only --data-dir "$DIR/st-marys" --listen "${HOME_URL#http://}" >&2
cat >>"$DIR/st-marys/node.toml" <<TOML
organisation = "St Mary's Hospital"

[mail]
host = "${SMTP_ADDR%:*}"
port = ${SMTP_ADDR#*:}
security = "none"
from = "St Mary's Hospital <no-reply@st-marys.example>"
TOML

# init NAME KIND DIR ORGANISATION
init() {
    CAREBRIDGE_ADMIN_PASSWORD=$ADMIN_PASSWORD "$NODE_BIN" init --data-dir "$3" \
        --name "$1" --kind "$2" --time-zone Europe/Amsterdam >/dev/null
    echo "organisation = \"$4\"" >>"$3/node.toml"
}
log "initialising the second hospital $SECOND_HOSPITAL and the insurer $INSURER"
init "$SECOND_HOSPITAL" hospital "$DIR/general" "General Hospital"
init "$INSURER" insurer "$DIR/insurer" "Assure Health Insurance"

log "peering St Mary's with General, and St Mary's with the insurer"
peer "$DIR/st-marys" "$HOME_URL" "$DIR/general" "$SECOND_URL"
peer "$DIR/st-marys" "$HOME_URL" "$DIR/insurer" "$INSURER_URL"

serve st-marys "$DIR/st-marys" "${HOME_URL#http://}"
serve insurer "$DIR/insurer" "${INSURER_URL#http://}"
serve general "$DIR/general" "${SECOND_URL#http://}"
# Checked once the nodes are up: aiosmtpd greets long before a node has started.
kill -0 "${started[0]}" 2>/dev/null || die "the mail sink stopped (is $SMTP_ADDR taken?): $(cat "$DIR/mail.err")"

creds=$DIR/st-marys/demo-credentials.json
patient_id=$(jq -r '.patients[0].id' "$creds")
patient_name=$(jq -r '.patients[0].name' "$creds")
card=$(jq -r '.patients[0].card_number' "$creds")
birth=$(jq -r '.patients[0].birth_date' "$creds")
doctor=$(jq -r '.doctors[0].username' "$creds")
doctor_password=$(jq -r '.doctors[0].password' "$creds")
reception=$(jq -r '.reception.username' "$creds")
reception_password=$(jq -r '.reception.password' "$creds")

log "St Mary's: $patient_name's e-mail address, and a signed report"
token=$(sign_in "$HOME_URL" "$doctor" "$doctor_password")
version=$(call GET "$HOME_URL/api/v1/patients/$patient_id" "$token" | jq -er .version)
call PATCH "$HOME_URL/api/v1/patients/$patient_id" "$token" \
    "$(jq -n --arg e "$PATIENT_EMAIL" '{email: $e}')" "If-Match: \"$version\"" >/dev/null
report=$(call POST "$HOME_URL/api/v1/reports" "$token" "$(jq -n --arg p "$patient_id" '{patient_id: $p,
    content: {title: "Chest X-ray", codes: ["J18.9"],
        findings: "Patchy consolidation in the right lower lobe.",
        conclusion: "Right lower lobe pneumonia. Amoxicillin for seven days; review in six weeks."}}')")
call POST "$HOME_URL/api/v1/reports/$(jq -r .id <<<"$report")/finalise" "$token" "" \
    "If-Match: \"$(jq -r .version <<<"$report")\"" >/dev/null

log "General: its doctor $SECOND_DOCTOR, and $patient_name, just arrived"
token=$(sign_in "$SECOND_URL" admin "$ADMIN_PASSWORD")
call POST "$SECOND_URL/api/v1/practitioners" "$token" "$(jq -n \
    --arg u "$SECOND_DOCTOR" --arg p "$SECOND_DOCTOR_PASSWORD" \
    '{username: $u, display_name: "Dr. Amara Mensah", role: "doctor", password: $p}')" >/dev/null
given=${patient_name%% *}
family=${patient_name#* }
token=$(sign_in "$SECOND_URL" "$SECOND_DOCTOR" "$SECOND_DOCTOR_PASSWORD")
call POST "$SECOND_URL/api/v1/patients" "$token" "$(jq -n --arg g "$given" --arg f "$family" \
    --arg b "$birth" --arg e "$PATIENT_EMAIL" \
    '{given_name: $g, family_name: $f, birth_date: $b, email: $e}')" >/dev/null

staff_file "$DIR/st-marys-reception.json" "$HOME_URL" "$reception" "$reception_password"
staff_file "$DIR/general-doctor.json" "$SECOND_URL" "$SECOND_DOCTOR" "$SECOND_DOCTOR_PASSWORD"

cat >&2 <<TEXT

St Mary's Hospital  $HOME_URL  front desk $reception / $reception_password, doctor $doctor / $doctor_password
                    every demo sign-in: $creds
General Hospital    $SECOND_URL  doctor $SECOND_DOCTOR / $SECOND_DOCTOR_PASSWORD, admin admin / $ADMIN_PASSWORD
Assure (insurer)    $INSURER_URL  admin admin / $ADMIN_PASSWORD
The patient         $patient_name, card $card at St Mary's, born $birth, e-mail $PATIENT_EMAIL
Mail sink           every message St Mary's sends: $DIR/mail.log

At General, open $patient_name, "Records at other hospitals", and ask St Mary's with the card
number and birth date above; approve with the code in $DIR/mail.log, or at St Mary's kiosk
(identify with the card and birth date) or front desk.

TEXT

if [ "$NO_APP" = 1 ]; then
    log "serving the three nodes until Ctrl-C"
    wait -n "${started[@]}" || true
    die "a node or the mail sink stopped (see $DIR/*.log)"
fi

# Without an OS keychain the profiles' keys come from this passphrase (a throw-away demo).
export CAREBRIDGE_PASSPHRASE="${CAREBRIDGE_PASSPHRASE:-carebridge-demo}"
"$APP_BIN" --staff-credentials "$DIR/st-marys-reception.json" --half left &
started+=("$!")
"$APP_BIN" --staff-credentials "$DIR/general-doctor.json" --half right &
started+=("$!")
"$APP_BIN" --kiosk --windowed --kiosk-credentials "$creds" &
started+=("$!")
log "three windows: St Mary's front desk, General's doctor, St Mary's kiosk; close one or press Ctrl-C to stop"
wait -n "${started[@]}" || true
