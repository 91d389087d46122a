"""The cities the weather service knows, with their ISO 3166 country codes.

A fixed list is what makes "unknown city" (404) meaningful: a well-formed
name that is not here is unknown. Keys are ``names.city_key`` of the name.
"""

CITIES: dict[str, tuple[str, str]] = {
    name.casefold(): (name, country)
    for name, country in [
        ("Amsterdam", "NL"),
        ("Auckland", "NZ"),
        ("Bangkok", "TH"),
        ("Berlin", "DE"),
        ("Bogotá", "CO"),
        ("Buenos Aires", "AR"),
        ("Cairo", "EG"),
        ("Cape Town", "ZA"),
        ("Chicago", "US"),
        ("Dublin", "IE"),
        ("Frankfurt", "DE"),
        ("Helsinki", "FI"),
        ("Hong Kong", "HK"),
        ("Istanbul", "TR"),
        ("Jakarta", "ID"),
        ("Lagos", "NG"),
        ("Lisbon", "PT"),
        ("London", "GB"),
        ("Madrid", "ES"),
        ("Melbourne", "AU"),
        ("Mexico City", "MX"),
        ("Montréal", "CA"),
        ("Mumbai", "IN"),
        ("Nairobi", "KE"),
        ("New York", "US"),
        ("Oslo", "NO"),
        ("Paris", "FR"),
        ("Rio de Janeiro", "BR"),
        ("Rome", "IT"),
        ("San Francisco", "US"),
        ("Santiago", "CL"),
        ("São Paulo", "BR"),
        ("Seattle", "US"),
        ("Seoul", "KR"),
        ("Singapore", "SG"),
        ("St. John's", "CA"),
        ("Stockholm", "SE"),
        ("Sydney", "AU"),
        ("Tokyo", "JP"),
        ("Toronto", "CA"),
        ("Vienna", "AT"),
        ("Warsaw", "PL"),
        ("Zürich", "CH"),
    ]
}
