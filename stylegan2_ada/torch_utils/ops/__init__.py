"""Low-level ops in the official API, written in plain PyTorch (no run-time compilation).

Each op is a composition of differentiable torch primitives, so autograd gives
first and second derivatives for free (R1 and path-length regularisation need
the latter).  ``impl`` arguments are accepted for API compatibility and ignored.
"""
