"""seaport's components for TypeScript, Go, YAML, ... programs.

`pulumi package add <this repository>` reads PulumiPlugin.yaml and runs this
file; the package schema is inferred from the components' type annotations
and docstrings (pulumi.provider.experimental), and the components run here,
in Python, whatever language the consuming program is written in.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def import_seaport(root: Path = ROOT) -> ModuleType:
    """The ``seaport`` package from this checkout, as pyproject.toml maps it (components/ is ``seaport``,
    apps/common/contract/ is ``seaport.contract``), whether or not the repository is pip-installed: the
    plugin's virtualenv holds only the locked dependencies."""
    if "seaport" in sys.modules:
        return sys.modules["seaport"]
    package = _spec("seaport", root / "components")
    sys.modules["seaport"] = module = importlib.util.module_from_spec(package)
    contract = _spec("seaport.contract", root / "apps" / "common" / "contract")
    sys.modules["seaport.contract"] = importlib.util.module_from_spec(contract)
    contract.loader.exec_module(sys.modules["seaport.contract"])
    package.loader.exec_module(module)
    module.contract = sys.modules["seaport.contract"]
    return module


def _spec(name: str, folder: Path) -> importlib.machinery.ModuleSpec:
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {name} from {folder}")
    return spec


if __name__ == "__main__":
    from pulumi.provider.experimental import component_provider_host

    seaport = import_seaport()
    from seaport.tools import sdk

    sdk.document_inherited_fields()
    component_provider_host(seaport.COMPONENTS, name="seaport", version=seaport.__version__)
