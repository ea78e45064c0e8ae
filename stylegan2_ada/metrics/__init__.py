"""Quality metrics (FID, KID, PR, IS, PPL) — see the metrics issue."""
