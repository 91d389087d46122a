"""What the apps and the seaport components must agree on, in one place.

Standard library only and nothing imported from outside this package: the
apps import it as ``apps.common.contract`` (it is in every image, whose build
context is ``apps/``), and the seaport library ships the same files as
``seaport.contract`` (a setuptools ``package-dir`` mapping), so a queue
argument, a metric name or a Consul service name cannot drift between the
code that uses it and the infrastructure that expects it.
"""
