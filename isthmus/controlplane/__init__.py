"""The control plane of one cluster: watches the platform, translates, serves xDS.

Sits above the platform adapters (it reads the platform's API) and below the CLI.
May import platform, xds, identity, proxy and model.
"""
