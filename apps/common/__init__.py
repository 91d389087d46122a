"""Code shared by every seaport app image: settings, logging, Consul discovery."""
