"""manGANime's own StyleGAN2-ADA: the official release's layout, API and numerics, in plain PyTorch."""
