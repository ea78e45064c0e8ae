"""manGANime extension: from anime episodes and manga scans to page-tagged training data.

One subpackage (room) per capability, in data-flow order; each imports only the rooms before it:

- ``io``: videos (read and write), frame stores, manga volumes, JSON files, all-or-nothing outputs;
- ``synthetic``: the built-in synthetic series, toy shapes, the photo clip;
- ``analysis``: frame similarity rho, decoding into stores, shot cuts, intros/outros, page alignment;
- ``data``: the page function, the series config, the exported datasets;
- ``cli``: the click commands of ``dataset_tool_anime.py`` (argument parsing only).
"""
