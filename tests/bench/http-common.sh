# Sourced by tests/bench/http-run and tests/bench/http-profile: installs the
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
