"""seaport's container apps: one sub-package per image (see each Dockerfile)."""
