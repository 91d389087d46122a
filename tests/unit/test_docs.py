"""The README's generated sections match the code (they can't drift)."""

from devtools import readme


def test_readme_generated_sections_are_current():
    current = readme.README.read_text()
    assert readme.render(current) == current, "README.md is out of date: run `make docs`"


def test_settings_table_lists_every_key_with_dev_and_prod_values():
    table = readme.settings_table()
    import settings

    for key in settings.schema():
        assert f"| `{key}` |" in table
    assert "| `scalingMode` | string | `target-tracking` | `step` | `target-tracking` |" in table
