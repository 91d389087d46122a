"""registrar: the sidecar that registers a container's dynamic host port with the local Consul agent."""
