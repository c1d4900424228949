"""Neural models: StyleGAN2 decoder, recognizers, encoders, keyed flow, checkpoints."""
