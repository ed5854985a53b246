#!/usr/bin/env bash
# Prove the built distributions work on their own: build the wheel and sdist, check the packaged data is inside,
# install the wheel (no source tree on the path) into a fresh venv and train the embedded default with it.
#
#   scripts/check-package.sh [WORK_DIR]     (tox -e pkg passes its own temporary folder)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
rm -rf "$work/dist" "$work/venv" "$work/run"
mkdir -p "$work/run"

echo "--- uv build (wheel + sdist)"
uv build --project "$root" --out-dir "$work/dist" --wheel --sdist --quiet
wheel="$(ls "$work"/dist/keel-*.whl)"
sdist="$(ls "$work"/dist/keel-*.tar.gz)"
echo "$wheel"; echo "$sdist"

echo "--- packaged data"
python3 - "$wheel" "$sdist" <<'PY'
import sys, tarfile, zipfile
wheel, sdist = sys.argv[1:]
needed = ["keel/data/adult/adult.data.gz", "keel/data/adult/adult.test.gz", "keel/configs/adult.yaml"]
names = set(zipfile.ZipFile(wheel).namelist())
missing = [n for n in needed if n not in names]
with tarfile.open(sdist) as tar:
    in_sdist = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
missing += [f"sdist:src/{n}" for n in needed if f"src/{n}" not in in_sdist]
if missing:
    sys.exit(f"missing from the distributions: {', '.join(missing)}")
print(f"ok: {len(names)} files in the wheel, {len(in_sdist)} in the sdist")
PY

echo "--- install the wheel into a fresh venv (versions pinned by uv.lock)"
uv export --project "$root" --frozen --no-default-groups --no-emit-project --no-hashes --quiet \
    --output-file "$work/constraints.txt"
uv venv --quiet --python "${KEEL_PKG_PYTHON:-3.11}" "$work/venv"
uv pip install --quiet --python "$work/venv/bin/python" --constraint "$work/constraints.txt" "$wheel"

echo "--- keel from the installed wheel, in an empty folder"
cd "$work/run"
export KEEL_WORKSPACE="$work/run/workspace" KEEL_CACHE_DIR="$work/run/cache"
unset MLFLOW_TRACKING_URI
"$work/venv/bin/keel" --help >/dev/null
"$work/venv/bin/keel" --version
"$work/venv/bin/python" - <<'PY'
import keel, pathlib
where = pathlib.Path(keel.__file__).resolve()
assert "site-packages" in where.parts, f"keel imported from {where}, not from the installed wheel"
print(f"keel imported from {where.parent}")
PY
"$work/venv/bin/keel" train --quiet
"$work/venv/bin/keel" models list
echo "--- ok: the wheel installs, ships its data and trains the embedded default"
