"""The stock symbols the stocks service knows, with the company names.

A fixed list is what makes "unknown symbol" (404) meaningful: a well-formed
symbol that is not here is unknown. Prices are sample data (see app.py).
"""

SYMBOLS: dict[str, str] = {
    "AAPL": "Apple Inc.",
    "ADBE": "Adobe Inc.",
    "AMD": "Advanced Micro Devices, Inc.",
    "AMZN": "Amazon.com, Inc.",
    "BRK.B": "Berkshire Hathaway Inc. Class B",
    "CSCO": "Cisco Systems, Inc.",
    "DIS": "The Walt Disney Company",
    "GOOG": "Alphabet Inc. Class C",
    "IBM": "International Business Machines Corporation",
    "INTC": "Intel Corporation",
    "JPM": "JPMorgan Chase & Co.",
    "KO": "The Coca-Cola Company",
    "MSFT": "Microsoft Corporation",
    "NFLX": "Netflix, Inc.",
    "NKE": "NIKE, Inc.",
    "NVDA": "NVIDIA Corporation",
    "ORCL": "Oracle Corporation",
    "PEP": "PepsiCo, Inc.",
    "SBUX": "Starbucks Corporation",
    "T": "AT&T Inc.",
    "TSLA": "Tesla, Inc.",
    "V": "Visa Inc.",
    "WMT": "Walmart Inc.",
    "XOM": "Exxon Mobil Corporation",
}
