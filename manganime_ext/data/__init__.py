"""The data products: the page function, the series config, and the datasets exported for training.

Imports only the rooms before it (``io``, ``synthetic``, ``analysis``).
"""
