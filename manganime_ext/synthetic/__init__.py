"""Built-in data nobody has to download: the synthetic anime series, toy shapes and a photo clip.

Imports only ``manganime_ext.io``.
"""
