#!/usr/bin/env bash
# Sets up the hulk_mm environment: a virtual environment with torch, a compiled mmcv 2.1.0, the OpenMMLab
# codebases and hulk_mm itself (editable). Idempotent: a second run on a ready machine only checks and exits.
#
#   bash tools/install.sh            # .venv/ at the repository root
#   HULK_VENV=/path/to/env bash tools/install.sh
#
# Environment knobs:
#   HULK_VENV     the virtual environment (default: <repo>/.venv). If it already holds torch + torchvision
#                 (e.g. a CUDA build on a GPU machine), they are kept.
#   HULK_PYTHON   the interpreter that creates the venv (default: python3.11, else python3)
#   HULK_CACHE    where compiled mmcv wheels are kept (default: ~/.cache/hulk_mm), one folder per
#                 torch version and device, because pip's own wheel cache is not keyed on the torch version.
#   MAX_JOBS      parallel compile jobs for mmcv (default: number of cores)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${HULK_VENV:-$ROOT/.venv}
case "$VENV" in /*) ;; *) VENV=$ROOT/$VENV ;; esac
BOOT_PY=${HULK_PYTHON:-$(command -v python3.11 || command -v python3)}
CACHE=${HULK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hulk_mm}
TORCH_PINS="torch==2.14.1 torchvision==0.29.1"
MMCV_VERSION=2.1.0
PY=$VENV/bin/python
PIP=("$PY" -m pip --disable-pip-version-check)
START=$SECONDS

say() { printf '[install %3ds] %s\n' "$((SECONDS - START))" "$*"; }
has() { "$PY" -c "$1" >/dev/null 2>&1; }

# ---- fast path: everything already installed by this very version of the recipe -------------------
STAMP=$VENV/.hulk_mm_install
RECIPE=$(cat "$ROOT/tools/install.sh" "$ROOT"/requirements/*.txt "$ROOT/setup.py" | sha256sum | cut -d' ' -f1)
READY_CHECK='
import importlib.util as u, sys
mods = ["torch", "torchvision", "mmengine", "mmcv._ext", "mmpose", "mmdet", "mmseg", "mmaction", "xtcocotools",
        "transformers", "hulk_mm"]
sys.exit(0 if all(u.find_spec(m) for m in mods) else 1)'
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$RECIPE" ] && has "$READY_CHECK"; then
    say "environment $VENV is ready"
    exit 0
fi

# ---- 1. virtual environment ------------------------------------------------------------------------
if [ ! -x "$PY" ]; then
    say "creating $VENV with $BOOT_PY"
    "$BOOT_PY" -m venv "$VENV"
fi
export PATH=$VENV/bin:$PATH   # ninja and cython from the venv for the source builds below

# ---- 2. torch + torchvision (kept if present) ------------------------------------------------------
if has "import torch, torchvision"; then
    say "keeping $("$PY" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)')"
else
    say "installing $TORCH_PINS"
    "${PIP[@]}" install -q $TORCH_PINS
fi

# ---- 3. build tools and runtime dependencies -------------------------------------------------------
say "installing build tools and runtime dependencies"
"${PIP[@]}" install -q "setuptools>=77.0.3,<82" wheel ninja cython
"${PIP[@]}" install -q mmengine==0.10.7 -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"

# ---- 4. mmcv 2.1.0 compiled with its ops against this torch ----------------------------------------
MMCV_OK="import mmcv, torch; assert mmcv.__version__ == '$MMCV_VERSION'; from mmcv.ops import nms; \
nms(torch.tensor([[0., 0, 10, 10], [1, 1, 10, 10]]), torch.tensor([.9, .8]), .5)"
if has "$MMCV_OK"; then
    say "mmcv $MMCV_VERSION with ops is installed"
else
    read -r TORCH_TAG DEVICE_TAG < <("$PY" -c "
import torch, shutil
cuda = torch.version.cuda is not None and torch.cuda.is_available() and shutil.which('nvcc') is not None
print(torch.__version__.replace('+', '_'), f'cuda{torch.version.cuda}' if cuda else 'cpu')")
    WHEELS=$CACHE/mmcv-$MMCV_VERSION-torch$TORCH_TAG-$DEVICE_TAG
    if ! ls "$WHEELS"/mmcv-$MMCV_VERSION-*.whl >/dev/null 2>&1; then
        say "compiling mmcv $MMCV_VERSION ops ($DEVICE_TAG) against torch $TORCH_TAG: about 15 min on 2 cores"
        WORK=$(mktemp -d)
        trap 'rm -rf "$WORK"' EXIT
        "${PIP[@]}" download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$WORK"
        tar -xzf "$WORK"/mmcv-$MMCV_VERSION.tar.gz -C "$WORK"
        # torch >= 2.14 headers need C++20 ("#error C++20 or later compatible compiler is required to use ATen"),
        # mmcv 2.1.0's setup.py forces -std=c++17 (host and nvcc flags). Patch the unpacked source only.
        sed -i 's/-std=c++17/-std=c++20/g' "$WORK/mmcv-$MMCV_VERSION/setup.py"
        grep -q -- '-std=c++17' "$WORK/mmcv-$MMCV_VERSION/setup.py" && { echo "C++ standard patch failed" >&2; exit 1; }
        export MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
        [ "$DEVICE_TAG" = cpu ] || export FORCE_CUDA=1
        LOG=$WORK/build.log
        set +e
        (cd "$WORK/mmcv-$MMCV_VERSION" && "${PIP[@]}" wheel -v --no-build-isolation --no-deps . -w "$WORK/wheel") >"$LOG" 2>&1 &
        BUILD=$!
        # progress: ninja prints [done/total] per compiled object
        while kill -0 "$BUILD" 2>/dev/null; do
            sleep 20
            step=$(grep -oE '^ *\[[0-9]+/[0-9]+\]' "$LOG" | tail -n 1 | tr -d ' ')
            say "mmcv build ${step:-(configuring)}"
        done
        wait "$BUILD"; rc=$?
        set -e
        if [ $rc -ne 0 ]; then
            tail -n 40 "$LOG" >&2
            echo "mmcv build failed (full log: $LOG)" >&2
            trap - EXIT
            exit $rc
        fi
        mkdir -p "$WHEELS"
        mv "$WORK"/wheel/mmcv-*.whl "$WHEELS"/
    fi
    say "installing $(ls "$WHEELS"/mmcv-*.whl)"
    "${PIP[@]}" install -q --no-deps --force-reinstall "$WHEELS"/mmcv-$MMCV_VERSION-*.whl
    has "$MMCV_OK" || { echo "mmcv installed but its ops do not run" >&2; exit 1; }
fi

# ---- 5. OpenMMLab codebases (--no-deps: see requirements/mminstall.txt) -----------------------------
say "installing mmpose, mmdet, mmsegmentation, mmaction2, mmpretrain (no deps)"
"${PIP[@]}" install -q --no-deps -r "$ROOT/requirements/mminstall.txt" -r "$ROOT/requirements/optional.txt"

# The PyPI xtcocotools wheel is built against numpy 1 ("numpy.dtype size changed"): rebuild it from source.
if ! has "import xtcocotools.mask"; then
    say "rebuilding xtcocotools from source for numpy $("$PY" -c 'import numpy; print(numpy.__version__)')"
    "${PIP[@]}" install -q --no-deps --force-reinstall --no-binary xtcocotools --no-build-isolation xtcocotools
fi

# ---- 6. hulk_mm itself -----------------------------------------------------------------------------
say "installing hulk_mm (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

has "$READY_CHECK" || { echo "installation incomplete: some package does not import" >&2; exit 1; }
echo "$RECIPE" >"$STAMP"
say "done: $("$PY" -c 'import torch, mmcv, mmengine, mmpose, mmdet, mmseg, mmaction
print(f"torch {torch.__version__}, mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, mmpose {mmpose.__version__}, "
      f"mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, mmaction2 {mmaction.__version__}")' 2>/dev/null)"
