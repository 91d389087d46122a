"""The README's generated sections and Pulumi.yaml's defaults match the code (they can't drift)."""

from devtools import readme


def test_readme_generated_sections_are_current():
    current = readme.README.read_text()
    assert readme.render(current) == current, "README.md is out of date: run `make docs`"


def test_pulumi_yaml_defaults_are_the_components_defaults():
    current = readme.PROJECT.read_text()
    assert readme.project_defaults(current) == current, "Pulumi.yaml defaults are out of date: run `make docs`"


def test_settings_table_lists_every_key_with_dev_and_prod_values():
    table = readme.settings_table()
    import settings

    for key in settings.schema():
        assert f"| `{key}` |" in table
    assert "| `scalingMode` | string | `target-tracking` | `step` | `target-tracking` |" in table


def test_the_readme_python_example_runs():
    """The snippet under "Using the components" is a program: run it under the mocks."""
    import re

    from seaport.tools.testing import run

    (snippet,) = re.findall(r"```python\n(# your_project/__main__\.py\n.*?)```", readme.README.read_text(), re.S)
    plan = run(lambda: exec(compile(snippet, "README.md", "exec"), {}))  # noqa: S102 - our own README
    assert plan.of_type("aws:ecs/service:Service") and plan.of_type("aws:lb/loadBalancer:LoadBalancer")
