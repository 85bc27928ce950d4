#!/bin/sh
# web/embed.sh - turns a file into a C source defining
#   const char mcpgw_status_page[];           (the bytes, NUL-terminated)
#   const unsigned long mcpgw_status_page_len; (the byte count, without the NUL)
# Usage: sh web/embed.sh INPUT OUTPUT.c
# POSIX sh, od and awk only (no xxd, no extra Debian package). Each byte is
# written as an octal character constant ('\074'), which compiles without
# warnings whatever the signedness of char and needs no long string literal.
# The output is written to a temporary file and renamed, so an interrupted
# build never leaves a truncated source behind.
set -eu
if [ $# -ne 2 ]; then
    echo "usage: $0 INPUT OUTPUT.c" >&2
    exit 2
fi
in=$1
out=$2
[ -r "$in" ] || { echo "$0: cannot read $in" >&2; exit 1; }
tmp="$out.tmp$$"
trap 'rm -f "$tmp"' EXIT HUP INT TERM
name=$(basename "$in")
{
    printf '/* Generated from %s by web/embed.sh at build time: do not edit. */\n' "$name"
    printf '#include "web/status_page.h"\n\n'
    printf 'const char mcpgw_status_page[] = {\n'
    LC_ALL=C od -An -v -to1 "$in" | LC_ALL=C awk '
        { for (i = 1; i <= NF; i++) {
              printf "%s'"'"'\\%s'"'"',", (n % 12 == 0 ? "    " : " "), $i
              n++
              if (n % 12 == 0) printf "\n"
          } }
        END {
            printf "%s'"'"'\\0'"'"'\n};\n", (n % 12 == 0 ? "    " : " ")
            printf "const unsigned long mcpgw_status_page_len = %dUL;\n", n
        }'
} >"$tmp"
# Cross-check the byte count against the file itself.
want=$(wc -c <"$in" | tr -d ' ')
grep -q "^const unsigned long mcpgw_status_page_len = ${want}UL;\$" "$tmp" || {
    echo "$0: byte count mismatch for $in (expected $want)" >&2
    exit 1
}
mv -f "$tmp" "$out"
trap - EXIT HUP INT TERM
