#!/bin/sh
# The whole doctagger loop on the bundled samples/ (make demo runs this).
# Usage: scripts/demo.sh [DOCTAGGER]   (the index is $DOCTAGGER_INDEX, default ./.doctagger)
set -eu
DT=${1:-doctagger}
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "1. Ingest the sample PDFs (text blocks -> chunks; the scanned pages are OCRed)"
# Exit 3 means "some files could not be ingested, each listed": the demo goes on with the
# rest. Any other failure stops it.
rc=0
$DT ingest samples/pdfs || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then
    exit "$rc"
fi

step "2. What was found"
$DT status
$DT docs --limit 5
$DT search "tumor" --limit 3

step "3. A task: which condition is each document about?"
if ! $DT tasks show condition >/dev/null 2>&1; then
    $DT tasks create condition --type classification --level document \
        --labels neoplasms,digestive,nervous,cardiovascular \
        --description "Main condition an abstract is about"
fi

step "4. Import the sample labels (samples/labels.csv: path,label)"
$DT import condition samples/labels.csv

step "5. Train (the fast frozen-encoder head; held-out metrics printed at the end)"
$DT train condition --method head

step "6. Tag every document with the new model version"
$DT tag condition

step "7. Search by tag, and look at one tagged document"
$DT search "blood pressure" --tag condition=cardiovascular --limit 3
$DT docs --tag condition=neoplasms --limit 5
first=$($DT docs --tag condition=nervous --json | python3 -c "import json,sys; d=json.load(sys.stdin); print(d[0]['id'] if d else '')" 2>/dev/null || true)
if [ -n "$first" ]; then
    $DT show "$first"
fi
printf '\nDone. The index is in %s; try: %s search "seizure" --tag condition=nervous\n' "${DOCTAGGER_INDEX:-.doctagger}" "$DT"
