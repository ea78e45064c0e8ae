"""Projection of anime frames into a trained generator's latent space, and what is made from it.

Modules: ``errors`` (the room's user error), ``frames`` (reading a clip: frames, times, cold starts at
cuts), ``video`` (batched, warm-started projection of many frames on ``stylegan2_ada.projector``'s
engine), ``tuning`` (pivotal tuning of G around the projected latents), ``interpolation`` (latent
paths: linear in W, spherical in Z, cubic through keyframes; rendering and smoothness), ``figures``
(the study's three-row figure, per-frame plots) and ``outputs`` (the files of a projection run).
Imports ``io``, ``analysis`` and ``stylegan2_ada``; never ``conditioning`` or ``tagger``.
"""
