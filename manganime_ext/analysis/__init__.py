"""What the tools read off episodes and pages: frame similarity rho, shot cuts, intros/outros, page alignment.

Pure functions where possible; imports only the rooms before it (``io``, ``synthetic``).
"""
