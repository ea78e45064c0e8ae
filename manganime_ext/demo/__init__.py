"""The whole pipeline in one command on the built-in synthetic series, with an HTML report.

``settings`` (how big), ``stages`` (the real command lines, in order), ``runner`` (resumable, timed),
``report`` (``index.html`` with pictures, videos and numbers). Run it with ``make demo`` or
``python -m manganime_ext.cli.demo --out demo-out``.
"""
