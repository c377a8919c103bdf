# Sourced by gpu.sh and gpu_followup.sh: repository root, $OUT, the log ($1, also on the terminal), wheels
# from .whl/ on a box without the project's dependencies, offline hub, and the card and stack printed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-benchmarks/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/$1") 2>&1
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONPATH=${PYTHONPATH:-$PWD} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 WORKBENCH_HOME=${WORKBENCH_HOME:-/tmp/wb}
# The face recognizer: dlib when its models are installed; else (a bare GPU box: dlib's model wheel is 100 MB,
# past what one device call carries) a miniature insightface pack built here from tests/insightface_pack.py.
# It finds "faces" by brightness, so identity numbers mean nothing; the timings of training and rendering
# do not depend on it.
# A pack built on the dev box and carried in .gpu/pack (make_pack, as below) is used as it is.
if [ -z "${RECOGNIZER:-}" ] && ! python3 -c "import dlib, face_recognition_models" 2>/dev/null \
    && [ -f .gpu/pack/buffalo_l/det_10g.onnx ]; then
  RECOGNIZER=insightface:$PWD/.gpu/pack/buffalo_l && echo "recognizer: the carried miniature insightface pack"
fi
if [ -z "${RECOGNIZER:-}" ] && ! python3 -c "import dlib, face_recognition_models" 2>/dev/null; then
  python3 -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from insightface_pack import make_pack; \
make_pack(Path('/tmp/wb-pack/buffalo_l'))" && RECOGNIZER=insightface:/tmp/wb-pack/buffalo_l \
    && echo "recognizer: miniature insightface pack (dlib's models are not installed here)"
fi
export RECOGNIZER=${RECOGNIZER:-auto}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, diffusers, transformers, peft, accelerate; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), '| diffusers', diffusers.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__, '| accelerate', accelerate.__version__)"
