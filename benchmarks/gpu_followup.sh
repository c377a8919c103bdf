#!/usr/bin/env bash
# The next GPU session's one prepared call (issue 17), after gpu.sh has run once on this stack. About 9
# minutes on one H100/H200, most important first, each part time-boxed so a slow part cannot eat the rest:
#   1. FLUX training at real size (crashed in backward at batch 4, NaN at step 2 at batch 1 on an H100):
#      3 optimizer steps at batch 1 and 1 step at batch 2, with PyTorch's attention choice and without the
#      cuDNN kernel, each in a fresh process (a CUDA fault poisons its process); the batch-2 run with
#      CUDA_LAUNCH_BLOCKING=1 so a fault names its kernel. Batch 2, not the 4 that crashed: at 512 px batch 4
#      traces at 71.9 GB, plus the 9.1 GB of text encoders this script keeps on the GPU, past an H100's 79.6,
#      so a crash there says nothing about kernels (batch 2: 47.7 + 9.1 GB). If only the no-cudnn runs pass,
#      the workbench's own FLUX chain runs once with --attention no-cudnn.
#   2. Why the trainer's SDXL step is slower per sample than it should be: plain diffusers at batch 1
#      (the ratio's baseline) and batch 4 on cached latents, the trainer at batch 4 eager, at batch 4 with
#      checkpointing (the memory planner puts it before batch 1 eager for SDXL: is it faster per sample?) and
#      at batch 8 compiled without checkpointing (63.4 GB traced; a likely host-bound step gains from both),
#      with a profile (GPU kernel time vs wall time per step, host syncs, launches, top ops).
#   3. In what is left: the FLUX step eager / compiled / fp8, then the SDXL pack with fp8.
# Writes everything into $OUT (default benchmarks/out); copy the numbers into benchmarks/RESULTS.md with
# the card they ran on.
#
#   bash benchmarks/gpu_followup.sh
source "$(dirname "$0")/gpu_env.sh" followup.log
TOTAL=${TOTAL_SECONDS:-540}
left() { echo $(( TOTAL - SECONDS )); }
echo "== 1. FLUX training at real size =="
diag() { timeout 75 python3 benchmarks/flux_train_diagnostic.py random-flux "$@" 2>&1 | grep -E "^(step|OK|ERR)|Error"; }
diag 1 512 1 1 --steps 3 | tee "$OUT/flux-b1-auto.txt"
diag 1 512 1 1 --steps 3 --attention no-cudnn | tee "$OUT/flux-b1-nocudnn.txt"
CUDA_LAUNCH_BLOCKING=1 diag 2 512 1 1 | tee "$OUT/flux-b2-auto.txt"
diag 2 512 1 1 --attention no-cudnn | tee "$OUT/flux-b2-nocudnn.txt"
if ! grep -q "^OK" "$OUT/flux-b2-auto.txt" && grep -q "^OK" "$OUT/flux-b2-nocudnn.txt"; then
  echo "-- the workbench's FLUX chain with --attention no-cudnn --"
  timeout 120 python3 benchmarks/realsize_chain.py --device cuda --families random-flux --attention no-cudnn \
    --json "$OUT/chain-flux-nocudnn.json"
fi
echo "== 2. SDXL training step: trainer vs plain, profiled =="
(( $(left) > 60 )) && timeout $(( $(left) < 260 ? $(left) : 260 )) python3 benchmarks/gpu_speed.py --device cuda \
  --sections train --plain-train 1:0,4:1 --train-variants 4:0,4:0:1,8:1:0 --train-steps 6 --train-profile \
  --json "$OUT/train-diagnosis.json"
echo "== 3. FLUX fp8, then the pack with fp8 =="
(( $(left) > 60 )) && timeout $(( $(left) - 5 )) python3 benchmarks/gpu_speed.py --device cuda --sections flux,pack \
  --variants 8:1:1 --images 16 --plain-images 2 --json "$OUT/fp8.json"
echo "followup done in ${SECONDS}s"
