"""manGANime extension: video I/O, page function, conditioning, next-frame training (later issues)."""
