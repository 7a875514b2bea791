# Sourced by the httpd benchmarks (http-run, http-profile, gil-fairness,
# stop-reload): installs the
# packages named in "$@" when missing (needs root) and builds mod_pyinterp
# (Release) into ${PYINTERP_BUILD_ROOT:-<repo>/build}/bench-http.  Sets
# $repo and $module.  $tool names the caller in messages.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build_dir=${PYINTERP_BUILD_ROOT:-$repo/build}/bench-http
module=$build_dir/mod/mod_pyinterp.so

"$repo/tests/install-deps"

missing=()
for pkg in "$@"; do
  dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "$tool: missing packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "$tool: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release \
  -DPYINTERP_BUILD_TESTS=OFF -DPYINTERP_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target mod_pyinterp >/dev/null

# build_against REV: builds mod_pyinterp (Release) from git revision REV into
# ${PYINTERP_BUILD_ROOT:-<repo>/build}/bench-http-against and prints
# "<short rev>=<path of the module>", a --module argument for the scripts.
build_against() {
  local rev=$1 old_build src
  old_build=${PYINTERP_BUILD_ROOT:-$repo/build}/bench-http-against
  src=$old_build-src
  rm -rf "$src" && mkdir -p "$src"
  git -C "$repo" archive "$rev" | tar -x -C "$src"
  cmake -S "$src" -B "$old_build" -DCMAKE_BUILD_TYPE=Release \
    -DPYINTERP_BUILD_TESTS=OFF -DPYINTERP_BUILD_BENCHMARKS=OFF >/dev/null
  cmake --build "$old_build" -j"$(nproc)" --target mod_pyinterp >/dev/null
  echo "$(git -C "$repo" rev-parse --short "$rev")=$old_build/mod/mod_pyinterp.so"
}

# this_tree_label: the tree's commit, "+changes" when files differ.
this_tree_label() {
  local label
  label=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo "this tree")
  git -C "$repo" diff --quiet HEAD -- 2>/dev/null || label="$label+changes"
  echo "$label"
}
