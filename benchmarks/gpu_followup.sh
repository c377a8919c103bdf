#!/usr/bin/env bash
# The next GPU session's one prepared call, after gpu.sh has run once on this stack. About 9
# minutes on one H100/H200, most important first, each part time-boxed so a slow part cannot eat the rest:
#   1. FLUX training at real size with the defaults. On 2026-11-27 (H100) cuDNN attention crashed the FLUX
#      step (illegal address at b1, graph failure at b2) where flash/efficient trained finite, so FLUX now
#      trains with --attention no-cudnn on a GPU by default: the workbench's chain with no --attention at
#      512 px, then 3 optimizer steps at 1024 px batch 1 (the 80 GB plan; traced 59.7 GB + 9.1 GB of text
#      encoders this diagnostic keeps resident).
#   2. The SDXL training step, trainer vs plain: plain diffusers b1 (the ratio's baseline) and b4 on cached
#      latents; the trainer at b4 eager (profiled after its timed steps: host syncs per step were 7.7 before
#      the pinned, non-blocking uploads and the single loss read, plain's 1.7), then b4 with peft's own LoRA
#      forward (the A/B of lean_lora: 2,800 fewer ops a step on CPU, bit-identical), at b1 eager and at b4 with
#      checkpointing (the planner puts b4+checkpointing before b1 eager for SDXL: which is faster per sample?)
#      and at b8 eager (59.7 GB traced; the step is host-bound: 262 ms of GPU kernels in a 631 ms step at b4).
#   3. The SDXL pack, bf16 compiled vs fp8 compiled in one process (fp8 gave the pack nothing on 2026-11-27:
#      1.262 s/image against 1.25 the day before, two runs on two days).
#   4. In what is left: the trainer compiled at b8 (its compile outlasted a 250 s box on 2026-11-27).
# Writes everything into $OUT (default benchmarks/out); copy the numbers into benchmarks/RESULTS.md with
# the card they ran on.
#
#   bash benchmarks/gpu_followup.sh
# Through the device tool, carry .whl (the wheels the box lacks) and .gpu (a miniature face pack built here
# with tests/insightface_pack.py's make_pack into .gpu/pack/buffalo_l; gpu_env.sh builds one if absent).
source "$(dirname "$0")/gpu_env.sh" followup.log
TOTAL=${TOTAL_SECONDS:-540}
left() { echo $(( TOTAL - SECONDS )); }
box() { local want=$1; local have=$(( $(left) - 5 )); echo $(( have < want ? have : want )); }
echo "== 1. FLUX training at real size, defaults =="
timeout "$(box 90)" python3 benchmarks/realsize_chain.py --device cuda --families random-flux --recognizer "$RECOGNIZER" \
  --json "$OUT/chain-flux.json"
diag() { timeout 70 python3 benchmarks/flux_train_diagnostic.py random-flux "$@" 2>&1 | grep -E "^(step|OK|ERR)|Error"; }
diag 1 1024 1 1 --steps 3 --attention no-cudnn | tee "$OUT/flux-1024-b1.txt"
echo "== 2. SDXL training step: trainer vs plain, profiled after the timed steps =="
(( $(left) > 90 )) && timeout "$(box 290)" python3 benchmarks/gpu_speed.py --device cuda --recognizer "$RECOGNIZER" \
  --sections train --plain-train 1:0,4:1 --train-variants 4:0,4:0:0:peft,1:0:0,4:0:1,8:0:0 --train-steps 6 --train-profile \
  --json "$OUT/train.json"
echo "== 3. SDXL pack: bf16 compiled vs fp8 compiled =="
(( $(left) > 90 )) && timeout "$(box 150)" python3 benchmarks/gpu_speed.py --device cuda --recognizer "$RECOGNIZER" \
  --sections pack --variants 8:1,8:1:1 --images 16 --plain-images 2 --json "$OUT/pack-fp8.json"
echo "== 4. The trainer compiled at batch 8 =="
(( $(left) > 90 )) && timeout "$(box 600)" python3 benchmarks/gpu_speed.py --device cuda --recognizer "$RECOGNIZER" \
  --sections train --plain-train 4:1 --train-variants 8:1:0 --train-steps 6 --json "$OUT/train-compiled.json"
echo "followup done in ${SECONDS}s"
