"""Reading and writing: videos, frame stores, manga volumes, JSON files and output folders.

The first room of the data flow: it imports nothing else from manganime_ext.
"""
