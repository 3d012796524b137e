#!/usr/bin/env bash
# Installs the Debian documentation packages of a real-documents eval set and copies exactly
# the files named in its corpus.tsv into DEST (default .cite/realdocs), under the names the
# questions use. Idempotent: installs only what is missing, copies only what differs, and
# removes files in DEST that corpus.tsv does not name (only in a DEST this script made).
#
#   bash eval/realdocs/setup.sh [DEST] [SET]   # SET: realdocs (default) or sealed (eval/sealed)
#   .venv/bin/cite index DEST    # then index it (a few minutes on 2 cores)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
set_name="${2:-realdocs}"
manifest="$here/../$set_name/corpus.tsv"
[[ -f "$manifest" ]] || { echo "setup.sh: no set $set_name (no $manifest)" >&2; exit 1; }
dest="${1:-.cite/$set_name}"
marker=".realdocs-corpus"  # marks a DEST this script owns, so pruning never touches other folders

mapfile -t rows < <(grep -v '^#' "$manifest" | grep -v '^[[:space:]]*$')
# derive.py's books: HTML manuals that pandoc makes into EPUB, DOCX and ODT (and handbook pages).
derived_packages=()
[[ "$set_name" == realdocs ]] && derived_packages=(pandoc debian-faq maxima-doc git-doc gnucash-docs debian-handbook)
mapfile -t packages < <({ printf '%s\n' "${rows[@]}" | cut -f1; printf '%s\n' "${derived_packages[@]}"; } | grep -v '^$' | sort -u)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: needs root to install: ${missing[*]} (or run: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  # Debian's doc packages drop /usr/share/doc unless the dpkg excludes allow it; this one
  # install keeps them (minimal images exclude /usr/share/doc by default).
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--path-include='/usr/share/doc/*' "${missing[@]}" >/dev/null
fi

if [[ -d "$dest" && -n "$(ls -A "$dest")" && ! -e "$dest/$marker" ]]; then
  echo "setup.sh: $dest exists, is not empty and was not made by this script; pick another DEST" >&2
  exit 1
fi
mkdir -p "$dest"
: >"$dest/$marker"

declare -A wanted=()
copied=0
for row in "${rows[@]}"; do
  IFS=$'\t' read -r package source target <<<"$row"
  if [[ ! -f "$source" ]]; then
    echo "setup.sh: $package is installed but $source is missing (a newer package version?)" >&2
    exit 1
  fi
  wanted["$target"]=1
  mkdir -p "$dest/$(dirname "$target")"
  if ! cmp -s "$source" "$dest/$target"; then
    cp "$source" "$dest/$target"
    copied=$((copied + 1))
  fi
done

removed=0
while IFS= read -r -d '' path; do
  relative="${path#"$dest"/}"
  if [[ "$relative" != "$marker" && -z "${wanted[$relative]:-}" ]]; then
    rm -- "$path"
    removed=$((removed + 1))
  fi
done < <(find "$dest" -type f -print0)
find "$dest" -mindepth 1 -type d -empty -delete

# Made again on every run (5 s): the pruning above removed last run's copies.
[[ "$set_name" == realdocs ]] && python3 "$here/derive.py" "$dest"

for package in "${packages[@]}"; do
  echo "$package $(dpkg-query -W -f='${Version}' "$package")"
done
echo "$dest: ${#rows[@]} files ($copied copied, $removed removed)"
