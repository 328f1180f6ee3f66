#!/usr/bin/env bash
# An Orthanc for the demo (make run): loopback only, its own ports, its data in DIR, the
# modality worklist plugin serving DIR/worklists, and a script that wakes the demo node when a
# study is stable. Runs in the foreground until killed.
#
#   scripts/demo-pacs.sh DIR NODE_URL
#
# The node is pointed at it by the CAREBRIDGE_IMAGING__* variables the Makefile exports (the
# same values are read here): PACS_HTTP_PORT, PACS_DICOM_PORT, PACS_AET, PACS_USER,
# PACS_PASSWORD, PACS_HINT_TOKEN.
set -euo pipefail
dir=${1:?usage: demo-pacs.sh DIR NODE_URL}
node_url=${2:?usage: demo-pacs.sh DIR NODE_URL}
: "${PACS_HTTP_PORT:=8043}" "${PACS_DICOM_PORT:=4243}" "${PACS_AET:=CAREBRIDGE}"
: "${PACS_USER:=carebridge}" "${PACS_PASSWORD:=demo-pacs-password}"
: "${PACS_HINT_TOKEN:=demo-hint-token-0123456789}"
plugin=/usr/share/orthanc/plugins/libModalityWorklists.so
command -v Orthanc >/dev/null || { echo "Orthanc is not installed (make deps installs Debian's orthanc)" >&2; exit 1; }
mkdir -p "$dir/db" "$dir/worklists"
case "$node_url$PACS_HINT_TOKEN" in *[\'\\]*) echo "the node's address and the hint token may not hold quotes or backslashes" >&2; exit 1 ;; esac
# A hint only wakes the node: a short timeout, so a node that does not answer never holds
# Orthanc's Lua thread.
cat > "$dir/hint.lua" <<LUA
function OnStableStudy(studyId, tags, metadata)
  SetHttpTimeout(5)
  HttpPost('$node_url/api/v1/imaging/hint', '{}', {['Authorization'] = 'Bearer $PACS_HINT_TOKEN'})
end
LUA
# The demo's modality is "CT1" on this machine: Orthanc answers worklist queries and takes
# studies from it alone (its DICOM port listens on every interface; HTTP on loopback only).
jq -n --arg dir "$dir" --argjson http "$PACS_HTTP_PORT" --argjson dicom "$PACS_DICOM_PORT" \
	--arg aet "$PACS_AET" --arg user "$PACS_USER" --arg password "$PACS_PASSWORD" --arg plugin "$plugin" '{
	Name: "CareBridge demo PACS",
	StorageDirectory: ($dir + "/db"), IndexDirectory: ($dir + "/db"),
	HttpPort: $http, DicomPort: $dicom, DicomAet: $aet,
	RemoteAccessAllowed: false, AuthenticationEnabled: true,
	RegisteredUsers: {($user): $password},
	StableAge: 3,
	DicomModalities: {ct1: ["CT1", "127.0.0.1", 4244]},
	DicomAlwaysAllowStore: false, DicomCheckModalityHost: true, DicomCheckCalledAet: false,
	Plugins: [$plugin],
	Worklists: {Enable: true, Database: ($dir + "/worklists")},
	LuaScripts: [($dir + "/hint.lua")]
}' > "$dir/orthanc.json"
exec Orthanc "$dir/orthanc.json"
