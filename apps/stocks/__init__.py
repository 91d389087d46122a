"""stocks: sample stock prices by symbol, ``GET /stock/<symbol>`` (see app.py)."""
