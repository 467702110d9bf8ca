"""Multi-cluster: links, service mirroring, gateways. May import xds, identity, proxy and model."""
