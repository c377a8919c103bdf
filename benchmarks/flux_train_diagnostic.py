"""One FLUX LoRA training step in a fresh process, for narrowing down GPU failures (see RESULTS.md):
``python benchmarks/flux_train_diagnostic.py FAMILY BATCH SIDE AUTOCAST(0/1) LORA_FP32(0/1)``."""

import sys

import torch
from peft import LoraConfig

sys.path.insert(0, ".")
from workbench.likeness.adapters import adapter_for  # noqa: E402
from workbench.models import get_family  # noqa: E402
from workbench.models.realsize import build_realsize_pipeline  # noqa: E402

name, batch, side = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
autocast, lora_fp32 = sys.argv[4] == "1", sys.argv[5] == "1"
family = get_family(name)
pipe = build_realsize_pipeline(family, "cuda", torch.bfloat16)
adapter = adapter_for("flux", pipe, family.text_length)
transformer = pipe.transformer
transformer.requires_grad_(False)
transformer.add_adapter(LoraConfig(r=16, lora_alpha=16, init_lora_weights="gaussian",
                                   target_modules=list(family.lora_targets)))
for param in transformer.parameters():
    if lora_fp32 and param.requires_grad:
        param.data = param.data.float()
cond = adapter.encode_captions(["photo of ohwx person"] * batch)
latents = torch.randn(batch, 16, side // 8, side // 8, device="cuda", dtype=torch.bfloat16)
try:
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        loss = adapter.loss(transformer, latents, cond, torch.Generator().manual_seed(0))
    loss.backward()
    torch.cuda.synchronize()
    print("OK", sys.argv[1:], float(loss.detach()))
except Exception as exc:
    print("ERR", sys.argv[1:], str(exc)[:300])
