"""The check every component's tests make: bad arguments are refused before anything is registered."""

from unittest import mock

from seaport import InvalidArgument
from seaport.tools.mocks import SeaportMocks
from seaport.tools.testing import run


def refused(program) -> InvalidArgument:
    """The InvalidArgument ``program`` raises; fails if any resource was registered before it was raised."""
    with mock.patch.object(
        SeaportMocks, "new_resource", autospec=True, side_effect=SeaportMocks.new_resource
    ) as registered:
        error = run(program, expect=InvalidArgument)
    registered.assert_not_called()
    return error


def assert_problem(error: InvalidArgument, path: str, message: str) -> None:
    """``error`` reports a problem at ``path`` whose text contains ``message``."""
    assert [str(p) for p in error.problems if p.path == path and message in str(p)], str(error)


def assert_refused(program, path: str, message: str) -> None:
    """``program`` is refused before anything is registered, with a problem at ``path`` whose text has ``message``."""
    assert_problem(refused(program), path, message)


def refused_paths(program) -> list[str]:
    """The sorted paths of the problems ``program`` is refused for (before anything is registered); fails unless the
    error's text names each of them."""
    error = refused(program)
    assert all(p.path in str(error) for p in error.problems), str(error)
    return sorted(p.path for p in error.problems)
