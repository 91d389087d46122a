"""seaport's components for TypeScript, Go, YAML, ... programs.

`pulumi package add <this repository>` reads PulumiPlugin.yaml and runs this
file; the package schema is inferred from the components' type annotations
and docstrings (pulumi.provider.experimental), and the components run here,
in Python, whatever language the consuming program is written in.
"""

import sys
from pathlib import Path

# The plugin is launched as a script from the repository; the components package sits beside it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi.provider.experimental import component_provider_host
from seaport import COMPONENTS, __version__

if __name__ == "__main__":
    component_provider_host(COMPONENTS, name="seaport", version=__version__)
