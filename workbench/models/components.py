"""Component configs several architectures share, as data: the published CLIP-L text encoder, SD's VAE and
DDPM scheduler, and the tiny families' small text encoder, VAE and scheduler. Each architecture's own
denoiser (and what only it uses) is in its module under ``architectures/``."""

CLIP_VOCAB, T5_VOCAB = 49408, 32128
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768, vocab_size=CLIP_VOCAB,
              bos_token_id=0, eos_token_id=1, pad_token_id=1)
VAE_SD = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[128, 256, 512, 512],
              down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
              layers_per_block=2, sample_size=512, scaling_factor=0.18215)
SCHEDULER_SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                    steps_offset=1, timestep_spacing="leading")

# Tiny families (random weights, seconds on a CPU); the text encoder's vocabulary is the local tokenizer's.
TINY_TEXT_ENCODER = dict(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32, intermediate_size=37,
                         num_attention_heads=4, num_hidden_layers=2, projection_dim=32, max_position_embeddings=77)
TINY_VAE = dict(block_out_channels=[8, 16], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
                down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                sample_size=64)
TINY_SD_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         num_train_timesteps=1000, steps_offset=1)
