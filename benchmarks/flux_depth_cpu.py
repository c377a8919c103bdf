"""Does a random-weight FLUX at real width blow up with depth? (Real-size FLUX training failed
on the H100 — NaN at batch 1, CUBLAS_STATUS_EXECUTION_FAILED at batch 4 — and random weights at depth
were one suspect.) Builds FLUX.1-dev's transformer at real width with fewer blocks, in fp32 on the CPU,
and prints per block the image stream's size after it, and the gradient a LoRA target (``attn.to_q``)
gets from a flow-matching-sized loss. ``python benchmarks/flux_depth_cpu.py [DOUBLE SINGLE SIDE]``
(default 4 8 128: 2.6 B parameters, ~20 GB of RAM with the gradients, ~2 min on 2 cores)."""

import sys

import torch
from diffusers import FluxTransformer2DModel

sys.path.insert(0, ".")
from workbench.models.architectures.flux import FLUX_DEV  # noqa: E402
from workbench.models.realsize import _building_on  # noqa: E402

double, single, side = (int(v) for v in (sys.argv[1:4] if len(sys.argv) > 3 else (4, 8, 128)))
torch.manual_seed(20261126)
with _building_on("cpu", torch.float32):
    model = FluxTransformer2DModel(**dict(FLUX_DEV, num_layers=double, num_single_layers=single))
sizes: dict[str, tuple[float, float]] = {}


def record(name):
    def hook(module, inputs, output):
        image = (output[1] if isinstance(output, tuple) else output).detach()  # double blocks: (text, image)
        sizes[name] = (float(image.abs().max()), float(image.pow(2).mean().sqrt()))
    return hook


blocks = [*(f"transformer_blocks.{i}" for i in range(double)),
          *(f"single_transformer_blocks.{i}" for i in range(single))]
for name in blocks:
    model.get_submodule(name).register_forward_hook(record(name))
model.requires_grad_(False)
for name in blocks:
    model.get_submodule(name).attn.to_q.weight.requires_grad_(True)
tokens, generator = (side // 16) ** 2, torch.Generator().manual_seed(0)
output = model(hidden_states=torch.randn(1, tokens, 64, generator=generator),
               encoder_hidden_states=torch.randn(1, 128, 4096, generator=generator),
               pooled_projections=torch.randn(1, 768, generator=generator), timestep=torch.tensor([0.5]),
               guidance=torch.tensor([3.5]), img_ids=torch.zeros(tokens, 3), txt_ids=torch.zeros(128, 3),
               return_dict=False)[0]
loss = (output - torch.randn(output.shape, generator=generator)).pow(2).mean()
loss.backward()
print(f"{sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters, {side} px, loss {float(loss):.4f}")
print("| block | image stream max | rms | to_q grad max | finite |\n|---|---|---|---|---|")
for name in blocks:
    grad = model.get_submodule(name).attn.to_q.weight.grad
    print(f"| {name} | {sizes[name][0]:.3g} | {sizes[name][1]:.3g} | {float(grad.abs().max()):.3g} | "
          f"{bool(torch.isfinite(grad).all())} |")
