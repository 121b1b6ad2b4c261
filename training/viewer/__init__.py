"""``turngym view``: a local web app over run folders — learning curves, evaluations with intervals,
the trajectory log turn by turn with each turn's credit, and tournaments (``docs/viewer.md``).

:mod:`.data` reads the folders (incrementally, through the trajectory index); :mod:`.server` is the
aiohttp app and its JSON API; ``static/`` holds the page (plain HTML, CSS and JavaScript: no CDN,
no build step).
"""
