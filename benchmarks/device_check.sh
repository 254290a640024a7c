#!/usr/bin/env bash
# The GPU check, in one script, under 8 minutes on a bare CUDA machine (run from the repository root):
#
#   bash benchmarks/device_check.sh                 # on the GPU machine
#   bash benchmarks/device_check.sh --fetch-wheels  # here, with PyPI, BEFORE: puts the wheels a bare box lacks
#                                                   # (open_clip_torch, ftfy, wcwidth) into .whl/ to carry along
#
# 1. Python: `import open_clip, torch` must work. If it does not: wheels in $WHEELS (default .whl/, carried to an
#    offline machine) are installed with pip --no-index into /tmp/site; without them
#    `python3 -m pip install -q -r requirements.txt` (needs the internet). A CUDA torch already there is kept.
# 2. The CUDA tests: the 13 that skip without a GPU (tests/test_methods.py and tests/test_methods_coop.py, -k cuda).
# 3. The scale benchmark on the GPU (python -m tipkit bench --device cuda), fp32 then bf16 autocast: the encoder
#    rows, then every method at ImageNet's shape first, then SUN397, Caltech101, Fashion-MNIST, until each
#    precision's share of the time budget is spent (rows are written as they finish).
# 4. Copies benchmarks/results/scale_cuda-*.csv and the logs into $OUT (when set) and prints a summary.
#
# A dry run where no GPU is: DEVICE_CHECK_DEVICE=cpu TIPKIT_BENCH=/tmp/dry DEVICE_CHECK_BUDGET_S=150 bash $0
#
# Time: DEVICE_CHECK_BUDGET_S (default 440 s) for the whole script, enforced with `timeout` and the benchmark's
# own --budget (no task starts after it); TASK_TIMEOUT_S (default 120 s) per method and shape. Commit the CSV it
# writes (benchmarks/results/scale_cuda-<gpu>.csv; the Efficiency chapter then shows the GPU's rows).
set -u -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
WHEEL_PINS="open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4"  # what the 'cuda' image lacks (KINDS.md), as pinned

if [ "${1:-}" = "--fetch-wheels" ]; then
    mkdir -p "$WHEELS"
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$WHEELS" $WHEEL_PINS
    ls -l "$WHEELS"
    exit $?
fi

BUDGET=${DEVICE_CHECK_BUDGET_S:-440}
DEVICE=${DEVICE_CHECK_DEVICE:-cuda}  # cpu: a dry run of this script where no GPU is (fp32 only, the CUDA tests skip)
RESULTS=${TIPKIT_BENCH:-benchmarks/results}
TASK_TIMEOUT=${TASK_TIMEOUT_S:-120}
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
OUTDIR=${OUT:-}
LOG=${OUTDIR:-/tmp}/device_check.log
exec > >(tee "$LOG") 2>&1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_MININTERVAL=5
say() { printf '\n== %s (%s s left)\n' "$*" "$(left)"; }

say "python and packages"
if ! $PY -c "import open_clip, torch" 2>/dev/null; then
    if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
        echo "installing the carried wheels from $WHEELS (offline)"
        timeout 120 $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site "$WHEELS"/*.whl && export PYTHONPATH="/tmp/site:$PYTHONPATH"
    else
        echo "no wheels in $WHEELS: pip install -r requirements.txt (needs the internet)"
        timeout 300 $PY -m pip install -q -r requirements.txt
    fi
fi
$PY -c "import torch" 2>/dev/null || { echo "device_check: no torch for $PY: install a CUDA build of torch first"; exit 3; }
$PY -c "import open_clip, torch, tipkit; print('torch', torch.__version__, '| open_clip', open_clip.__version__, \
'| CUDA', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" || {
    echo "device_check: cannot import open_clip, torch and tipkit; carry the wheels: bash $0 --fetch-wheels"; exit 3; }
[ "$DEVICE" = cpu ] || $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "device_check: torch sees no CUDA device"; exit 4; }

say "CUDA tests (they skip without a GPU)"
timeout $(( $(left) < 180 ? $(left) : 180 )) $PY -m pytest -q -p no:cacheprovider -m "not slow" -k cuda -rs \
    tests/test_methods.py tests/test_methods_coop.py 2>&1 | tee /tmp/cuda_tests.log
TESTS=$(grep -E "passed|failed|error|skipped" /tmp/cuda_tests.log | tail -1)

SHAPES="imagenet sun397 caltech101 fashion-mnist"
PRECISIONS="fp32 bf16"
[ "$DEVICE" = cpu ] && PRECISIONS=fp32
for PREC in $PRECISIONS; do
    [ "$PREC" = fp32 ] && [ "$PRECISIONS" != fp32 ] && share=$(( ($(left) - 30) / 2 )) || share=$(( $(left) - 30 ))
    if [ "$share" -lt 20 ]; then echo "no time left for $PREC"; continue; fi
    say "scale benchmark on $DEVICE, $PREC, budget $share s"
    timeout $(( share + 60 )) $PY -m tipkit bench --device "$DEVICE" --precision "$PREC" --shapes $SHAPES \
        --timeout "$TASK_TIMEOUT" --budget "$share" --out "$RESULTS"
done

say "summary"
CSV=$(ls -t "$RESULTS"/scale_"$DEVICE"-*.csv 2>/dev/null | head -1)
echo "CUDA tests: ${TESTS:-did not run}"
if [ -n "$CSV" ]; then
    $PY - "$CSV" <<'EOF'
import sys
import pandas as pd
df = pd.read_csv(sys.argv[1])
print(f"{sys.argv[1]}: {len(df)} rows")
print(df.groupby(["precision", "status"]).size().to_string())
m = df[df["shape"] == "imagenet"].pivot_table(index="method", columns=["protocol", "precision"], values="fit_s")
print("fit (s) at ImageNet's shape:\n" + m.round(2).to_string())
enc = df[df["method"].isin(["encode", "decode"])][["shape", "method", "precision", "predict_s_per_1k"]]
print("encoder, s per 1,000 images:\n" + enc.to_string(index=False))
EOF
    [ -n "$OUTDIR" ] && cp "$CSV" "$OUTDIR/" && cp /tmp/cuda_tests.log "$OUTDIR/"
else
    echo "no benchmark CSV was written"
fi
echo "device_check: done in $(( $(date +%s) - START )) s"
