#!/usr/bin/env bash
# One GPU, about 8 minutes, no download: the real-size chain (train -> generate -> score) for
# random-sd15, random-sdxl and random-flux in one process (precision switches fp16 -> bf16 on the way,
# SDXL latents checked for NaN), then the speed table against plain diffusers (benchmarks/gpu_speed.py),
# then, in what is left of the 8 minutes, face analysis photos/s per backend (benchmarks/bench_faces.py).
# Writes chain.json, speed.json and gpu.log into $OUT (default benchmarks/out); copy the table into
# benchmarks/RESULTS.md with the card it ran on.
#
#   bash benchmarks/gpu.sh                      # on a GPU box with the workbench installed
#
# On a box without the project's dependencies, put their wheels in .whl/ (diffusers, peft, transformers,
# pydantic, imagehash, ...); they are installed into /tmp/site first. RECOGNIZER picks the face model
# (default: auto = insightface if its pack is present, else dlib).
source "$(dirname "$0")/gpu_env.sh" gpu.log
RECOGNIZER=${RECOGNIZER:-auto}
status=0
echo "== real-size chain =="
timeout "${CHAIN_SECONDS:-230}" python3 benchmarks/realsize_chain.py --device cuda --recognizer "$RECOGNIZER" \
  --json "$OUT/chain.json" || status=1
echo "== speed vs plain diffusers =="
timeout "${SPEED_SECONDS:-250}" python3 benchmarks/gpu_speed.py --device cuda --recognizer "$RECOGNIZER" \
  --json "$OUT/speed.json" ${SPEED_ARGS:-} || status=1
echo "== face analysis, photos/s per backend on this host's cores =="
left=$(( ${TOTAL_SECONDS:-480} - SECONDS ))  # only in what is left of the 8 minutes
if (( left >= 20 )); then timeout "$left" python3 benchmarks/bench_faces.py || status=1
else echo "skipped: ${left}s left of ${TOTAL_SECONDS:-480}s"; fi
exit $status
