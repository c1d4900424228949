"""StyleGAN2 in the layout of NVIDIA stylegan2-ada-pytorch (pure PyTorch ops)."""
