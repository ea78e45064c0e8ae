"""The page tagger: a local web app in which a person confirms where each manga page ends in the anime.

``edits`` (pure changes to a page function, each refused with one line when it would break a rule),
``workspace`` (a series' episodes as the tagger holds them: undo/redo, atomic saves, conflicts),
``images`` (frames and pages as browser-cacheable bytes), ``server`` (the HTTP API and the one page).
"""
