"""weather: sample weather by city, ``GET /weather/<city>`` (see app.py)."""
