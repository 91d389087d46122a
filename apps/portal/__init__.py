"""portal: the web page with a Stocks panel and a Weather panel, plus a JSON API (see app.py)."""
