"""Multi-cluster: gateways, links, service mirroring (decisions, pure; the CLI and platform do the I/O).

Sits above the platform in the layers; may import platform, proxy, xds, identity and model.
"""
