#!/usr/bin/env bash
# make_corpus.sh: gathers the embedded default corpus into data/corpus/ (docs/DATA.md): the King
# James Bible (public domain) from Debian's bible-kjv package, one file per book, one document per
# chapter, documents separated by a line "<|doc|>" (pass --doc-sep '<|doc|>' to qtx).
# Usage: scripts/make_corpus.sh [OUT_DIR]   (default data/corpus; idempotent)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-data/corpus}
SEP='<|doc|>'

if ! command -v bible >/dev/null 2>&1; then
  echo "make_corpus.sh: the 'bible' program is missing; install the bible-kjv package" \
       "(scripts/setup.sh does)" >&2
  exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/qtx-corpus.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# "Ge1:1 In the beginning ..." for all 31102 verses
bible -f "Gen1:1-Rev22:21" > "$tmp/verses.txt"

# Book abbreviations as the bible program prints them, in order, with their names.
awk -v out="$tmp" -v sep="$SEP" '
BEGIN {
  n = split("Genesis|Exodus|Leviticus|Numbers|Deuteronomy|Joshua|Judges|Ruth|1 Samuel|2 Samuel|" \
            "1 Kings|2 Kings|1 Chronicles|2 Chronicles|Ezra|Nehemiah|Esther|Job|Psalms|Proverbs|" \
            "Ecclesiastes|Song of Solomon|Isaiah|Jeremiah|Lamentations|Ezekiel|Daniel|Hosea|" \
            "Joel|Amos|Obadiah|Jonah|Micah|Nahum|Habakkuk|Zephaniah|Haggai|Zechariah|Malachi|" \
            "Matthew|Mark|Luke|John|Acts|Romans|1 Corinthians|2 Corinthians|Galatians|" \
            "Ephesians|Philippians|Colossians|1 Thessalonians|2 Thessalonians|1 Timothy|" \
            "2 Timothy|Titus|Philemon|Hebrews|James|1 Peter|2 Peter|1 John|2 John|3 John|Jude|" \
            "Revelation", names, "|")
  book = 0; prev_abbr = ""; prev_ch = ""
}
/^$/ { next }
{
  if (!match($0, /^[0-9]?[A-Za-z]+[0-9]+:[0-9]+ /)) { print "unexpected line: " $0 > "/dev/stderr"; exit 1 }
  ref = substr($0, 1, RLENGTH - 1); text = substr($0, RLENGTH + 1)
  match(ref, /^[0-9]?[A-Za-z]+/); abbr = substr(ref, 1, RLENGTH)
  rest = substr(ref, RLENGTH + 1); split(rest, cv, ":"); ch = cv[1]; verse = cv[2]
  if (abbr != prev_abbr) {
    if (file) close(file)
    book++
    slug = tolower(names[book]); gsub(/ /, "_", slug)
    file = sprintf("%s/kjv_%02d_%s.txt", out, book, slug)
    prev_abbr = abbr; prev_ch = ""
  }
  if (ch != prev_ch) {
    if (prev_ch != "") print sep > file
    title = (names[book] == "Psalms") ? "Psalm " ch : names[book] " " ch
    print title "\n" > file
    prev_ch = ch
  }
  print verse " " text > file
}
END { if (book != n) { print "found " book " books, expected " n > "/dev/stderr"; exit 1 } }
' "$tmp/verses.txt"
rm "$tmp/verses.txt"

files=$(ls "$tmp" | wc -l)
docs=$(( $(cat "$tmp"/*.txt | grep -cx -F "$SEP") + files ))
[ "$files" -eq 66 ] && [ "$docs" -eq 1189 ] || {
  echo "make_corpus.sh: expected 66 books and 1189 chapters, got $files and $docs" >&2; exit 1; }
mkdir -p "$OUT"
rm -f "$OUT"/kjv_*.txt
mv "$tmp"/*.txt "$OUT"/
echo "make_corpus.sh: $OUT: $files files, $docs documents, $(cat "$OUT"/kjv_*.txt | wc -c) bytes" >&2
