"""Manga-conditioned next-frame prediction: F_{n+1} = G(F_n, M(n)) on top of a pretrained StyleGAN2.

Rooms: ``predictor`` (the interface and the registry of predictors by ``--cond`` name), ``paper``
(the study's recipe), ``warpstyle`` (our predictor), ``data`` (pairs with their history and page
window), ``loss`` and ``task`` (the plug-in of the shared training loop), ``evaluation`` (held-out
metrics against the baselines), ``rollout`` (autoregressive video) and ``figures``.
"""
