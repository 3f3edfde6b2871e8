#!/usr/bin/env bash
# Makes sure a Python with anndata (and h5py) is available for the I/O tests, which check that
# the h5ad files we write are read correctly by anndata and build 10x .h5 fixtures with h5py.
# Debian's python3-anndata (0.8, brings python3-h5py) is the target; it lands in /usr/bin/python3,
# which may differ from the `python3` on PATH (pyenv etc.), so both are tried.
# Prints the interpreter that works on stdout. As root it installs the package when missing;
# otherwise it says exactly what to install and exits 1.
set -euo pipefail

have_anndata() { "$1" -c "import anndata, h5py" >/dev/null 2>&1; }

find_python() {
  for py in "${CELLGPU_PYTHON:-}" python3 /usr/bin/python3; do
    [ -n "$py" ] || continue
    command -v "$py" >/dev/null 2>&1 || continue
    if have_anndata "$py"; then command -v "$py"; return 0; fi
  done
  return 1
}

if find_python; then exit 0; fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing python3-anndata (Debian) ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends python3-anndata >&2
  if find_python; then exit 0; fi
  echo "python3-anndata was installed but no python3 can import anndata and h5py" >&2
  exit 1
fi

echo "No Python with anndata and h5py found. Install Debian's python3-anndata (it brings python3-h5py):" >&2
echo "  sudo apt-get install python3-anndata" >&2
echo "or point CELLGPU_PYTHON at a python3 that can 'import anndata, h5py'." >&2
exit 1
