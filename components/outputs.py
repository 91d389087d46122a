"""How every component ends: its outputs set as attributes and registered with the engine, once."""

from typing import Any

import pulumi


def register(component: pulumi.ComponentResource, **outputs: Any) -> None:
    """Set each output as an attribute of ``component`` and register them all, under the same names.

    Python programs and the component provider (for other languages) read the attributes the class annotates;
    the registered outputs are what the engine records in the state."""
    for key, value in outputs.items():
        setattr(component, key, value)
    component.register_outputs(outputs)
