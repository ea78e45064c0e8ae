"""The click commands of dataset_tool_anime.py: argument parsing only, each command calls one room's functions.

The last room of the data flow: it may import every other one, and none imports it.
"""
