#!/usr/bin/env bash
# Plays the CT scanner of the demo (make run): reads the modality worklist for an order (by
# ACCESSION, or the first one scheduled), makes an image of a few slices, gives them what the
# worklist says (PatientID, IssuerOfPatientID, name, accession, StudyInstanceUID, modality) and
# sends them to the demo's Orthanc with dcmtk's storescu. The study then arrives, live, on the
# patient's page in the staff app.
#
#   scripts/demo-send-study.sh [ACCESSION]
#
# With UNKNOWN=1 it sends a study that names no order and a patient from elsewhere instead: it
# lands on the "Unmatched studies" list, to link by hand.
set -euo pipefail
: "${PACS_DICOM_PORT:=4243}" "${PACS_AET:=CAREBRIDGE}" "${SLICES:=3}"
for tool in findscu storescu img2dcm dcmodify dcmdump convert; do
	command -v "$tool" >/dev/null || { echo "$tool is missing (make deps installs dcmtk and imagemagick)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The value of a tag in a DICOM file (empty when absent).
value() { dcmdump +P "$2" "$1" 2>/dev/null | sed -n 's/^[^[]*\[\(.*\)\].*$/\1/p' | head -n1 | sed 's/ *$//'; }

tags=()
if [ "${UNKNOWN:-0}" = 1 ]; then
	tags=(-i "(0010,0020)=EXT-$RANDOM" -i "(0010,0021)=elsewhere.example" -i "(0010,0010)=Unknown^Patient"
		-i "(0008,0050)=" -i "(0008,0060)=MR" -i "(0008,1030)=MR brain (outside referral)")
else
	key=(-k "(0008,0050)${1:+=$1}")
	findscu -W -X -od "$work" -aet CT1 -aec "$PACS_AET" 127.0.0.1 "$PACS_DICOM_PORT" "${key[@]}" \
		-k "(0010,0010)" -k "(0010,0020)" -k "(0010,0021)" -k "(0020,000d)" \
		-k "(0040,0100)[0].(0008,0060)" -k "(0040,0100)[0].(0040,0007)" -k "(0040,0100)[0].(0040,0002)" \
		-k "(0040,0100)[0].(0040,0003)" 2>"$work/findscu.log" \
		|| { cat "$work/findscu.log" >&2; echo "the PACS did not answer on 127.0.0.1:$PACS_DICOM_PORT (is make run up?)" >&2; exit 1; }
	# The earliest scheduled order first.
	entry=""
	for f in "$work"/rsp*.dcm; do
		[ -e "$f" ] || continue
		printf '%s%s %s\n' "$(value "$f" 0040,0002)" "$(value "$f" 0040,0003)" "$f"
	done | sort > "$work/entries"
	entry=$(head -n1 "$work/entries" | cut -d' ' -f2-)
	[ -n "$entry" ] || { echo "no order on the worklist${1:+ with accession $1} (order one on a patient's page)" >&2; exit 1; }
	accession=$(value "$entry" 0008,0050)
	echo "scanning for order $accession: $(value "$entry" 0010,0010), patient $(value "$entry" 0010,0020)"
	tags=(-i "(0010,0020)=$(value "$entry" 0010,0020)" -i "(0010,0021)=$(value "$entry" 0010,0021)"
		-i "(0010,0010)=$(value "$entry" 0010,0010)" -i "(0008,0050)=$accession"
		-i "(0020,000d)=$(value "$entry" 0020,000d)" -i "(0008,0060)=$(value "$entry" 0008,0060)"
		-i "(0008,1030)=$(value "$entry" 0040,0007)")
fi
study=""
for i in $(seq 1 "$SLICES"); do
	convert -size 256x256 radial-gradient:white-black -fill gray40 -draw "circle 128,128 128,$((40 + i * 10))" \
		-type TrueColor "BMP3:$work/slice$i.bmp"
	img2dcm -i BMP "$work/slice$i.bmp" "$work/slice$i.dcm"
	# Names in UTF-8, as the worklist's.
	dcmodify -nb -i "(0008,0005)=ISO_IR 192" "${tags[@]}" -i "(0008,0020)=$(date +%Y%m%d)" -i "(0020,0013)=$i" "$work/slice$i.dcm"
	# One study and one series for every slice (img2dcm gives each file its own).
	if [ -z "$study" ]; then
		study=$(value "$work/slice1.dcm" 0020,000d)
		series=$(value "$work/slice1.dcm" 0020,000e)
	else
		dcmodify -nb -i "(0020,000d)=$study" -i "(0020,000e)=$series" "$work/slice$i.dcm"
	fi
done
storescu -aet CT1 -aec "$PACS_AET" 127.0.0.1 "$PACS_DICOM_PORT" "$work"/slice*.dcm
echo "sent $SLICES images; the study is stable a few seconds after the last one"
