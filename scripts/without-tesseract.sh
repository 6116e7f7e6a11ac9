#!/bin/sh
# Run a command as on a fresh machine without Tesseract: in a private mount namespace where
# the tesseract program and its language data are hidden (CI uses it for `make demo`, so a
# green CI cannot depend on a hand-installed Tesseract). Needs root (or user namespaces).
# Usage: scripts/without-tesseract.sh COMMAND [ARG...]
set -eu
if [ "${DOCTAGGER_IN_NAMESPACE:-}" = 1 ]; then
    for exe in $(command -v tesseract 2>/dev/null || true) /usr/bin/tesseract /usr/local/bin/tesseract; do
        [ -e "$exe" ] && mount --bind /dev/null "$exe"
    done
    for dir in /usr/share/tesseract-ocr /usr/share/tessdata /usr/local/share/tessdata; do
        [ -d "$dir" ] && mount -t tmpfs none "$dir"
    done
    unset TESSDATA_PREFIX
    if command -v tesseract >/dev/null 2>&1 || ls /usr/share/tesseract-ocr/*/tessdata >/dev/null 2>&1; then
        echo "without-tesseract: Tesseract is still visible" >&2
        exit 1
    fi
    exec "$@"
fi
DOCTAGGER_IN_NAMESPACE=1 exec unshare --mount --propagation private sh "$0" "$@"
